# relational (RFC 5231) :count and :value with i;ascii-numeric.
require ["relational", "comparator-i;ascii-numeric", "imap4flags"];

if header :count "ge" :comparator "i;ascii-numeric" "Received" "3" {
  addflag "many-hops";
}
if header :value "ge" :comparator "i;ascii-numeric" "X-Spam-Score" "5" {
  addflag "spammy";
}
if address :count "gt" :comparator "i;ascii-numeric" "to" "2" {
  addflag "many-to";
}
