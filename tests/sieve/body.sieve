# body (RFC 5173) :text, and regex.
require ["body", "regex", "imap4flags"];

if body :text :contains "payment failed" {
  addflag "payment";
}
if body :contains "unsubscribe" {
  addflag "bulk";
}
if header :regex "Subject" "^(re|fwd): .*order [0-9]{3,}" {
  addflag "order";
}
if body :content "text/html" :contains "<b>payment" {
  addflag "html-bold";
}
if body :content "text" :contains "click to unsubscribe" {
  addflag "text-unsubscribe";
}
# :raw reads the body undecoded: the base64 of "%PDF-1.4", not the PDF.
if body :raw :contains "JVBERi0xLjQK" {
  addflag "raw-pdf";
}
if body :raw :contains "%PDF" {
  addflag "decoded-pdf";
}
# A regex's `.` matches a line break in Sieve (POSIX), and the text keeps
# its CRLF: "your payment" and "failed" are on two lines of
# messages/wrapped.eml.
if body :text :regex "payment..failed again" {
  addflag "wrapped-regex";
}
