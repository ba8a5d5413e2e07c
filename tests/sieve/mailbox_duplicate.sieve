# mailbox (RFC 5490) :create, duplicate (RFC 7352).
require ["mailbox", "fileinto", "duplicate", "imap4flags"];

if duplicate {
  addflag "seen-before";
}
if duplicate :header "X-Event" :seconds 3600 {
  addflag "event-repeat";
}
fileinto :create "Created.Folder";
