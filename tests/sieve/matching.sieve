# :is, :contains, :matches with * and ?, and the comparators.
require ["fileinto", "imap4flags"];

if header :matches "Subject" "Re: ?eport*" {
  addflag "reply-report";
}
if header :matches "Subject" "*urgent*" {
  addflag "urgent";
}
if header :is :comparator "i;octet" "X-Mode" "Strict" {
  addflag "octet-strict";
}
if header :is "X-Mode" "strict" {
  addflag "casemap-strict";
}
if header :contains :comparator "i;octet" "Subject" "URGENT" {
  addflag "octet-urgent";
}
if address :all :matches "from" "*@*.example.org" {
  addflag "org-sub";
}
if header :matches "X-Literal" "a\\*b" {
  addflag "literal-star";
}
