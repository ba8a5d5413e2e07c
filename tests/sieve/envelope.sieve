# envelope (RFC 5228 §5.4) and subaddress (RFC 5233).
require ["envelope", "subaddress", "fileinto"];

if envelope :domain :is "from" "lists.example.org" {
  fileinto "Lists";
} elsif envelope :detail "to" "shop" {
  fileinto "Shopping";
} elsif address :user :is "to" "alex" {
  fileinto "Alex";
} elsif address :detail :is "to" "news" {
  fileinto "News";
}
if envelope :localpart :matches "from" "sender*" {
  stop;
}
fileinto "Unreached";
