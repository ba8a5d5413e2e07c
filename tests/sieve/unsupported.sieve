# Constructs Flow cannot express: converted as comments with notes.
require ["fileinto", "imap4flags", "copy", "mailbox", "variables"];

if hasflag "\\Seen" {
  fileinto "Read";
}
if header :contains "Subject" "both" {
  fileinto :copy "Both";
}
if mailboxexists "Archive" {
  fileinto "Archive";
}
if header :contains "Subject" "x" {
  addflag "a";
  removeflag "a";
}
