# Included by include.sieve.
require ["fileinto"];

if header :contains "Subject" "from include" {
  fileinto "Included";
}
