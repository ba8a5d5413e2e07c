# ereject (RFC 5429): Pigeonhole 0.5 does not implement it (sievec refuses
# the capability), so this script is converted but not compared.
require ["ereject"];

if header :contains "Subject" "bounce me" {
  ereject "No.";
}
