# RFC 5228: if/elsif/else, allof/anyof/not, header, address, exists, size, true.
require ["fileinto"];

if header :is "X-Spam-Flag" "YES" {
  fileinto "Junk";
  stop;
}

if allof (address :domain :is "from" "example.com", not exists "List-Id") {
  fileinto "Colleagues";
} elsif anyof (header :contains ["Subject", "Comments"] "invoice", size :over 20K) {
  fileinto "Billing";
} else {
  keep;
}

if address :localpart :is ["to", "cc"] "postmaster" {
  fileinto "Admin.Postmaster";
}

if size :under 1 {
  discard;
}
