# address on headers without a Flow field of their own: read with
# addresses(header("Name").raw).
require ["imap4flags", "relational", "comparator-i;ascii-numeric"];

if address :domain :is "resent-from" "lists.example.net" {
  addflag "resent";
}
if address :localpart :is ["bcc", "delivered-to"] "alex" {
  addflag "hidden";
}
if address :all :contains "Resent-Sender" "@shop" {
  addflag "receipt";
}
if address :count "ge" :comparator "i;ascii-numeric" "resent-to" "3" {
  addflag "many";
}
