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
