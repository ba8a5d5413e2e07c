# imap4flags: addflag, setflag, removeflag, :flags.
require ["imap4flags", "fileinto"];

setflag "\\Seen";
if header :contains "Subject" "important" {
  addflag ["\\Flagged", "$Important"];
}
if header :contains "Subject" "file" {
  fileinto :flags "$Filed" "Filed";
}
