# spamtest (RFC 5235).
require ["spamtest", "relational", "comparator-i;ascii-numeric", "fileinto"];

if spamtest :value "ge" :comparator "i;ascii-numeric" "5" {
  fileinto "Junk";
}
