# hasflag reads the flags the script set so far (imap4flags' internal
# variable): false until a flag it tests may have been set.
require ["imap4flags", "fileinto"];

if hasflag "\\Seen" {
  fileinto "Read";
}
if header :contains "Subject" "zzz-never" {
  addflag "$Never";
}
if hasflag :is ["\\Flagged", "$Other"] {
  fileinto "Flagged";
}
if not hasflag :is "\\Seen" {
  addflag "unread";
}
