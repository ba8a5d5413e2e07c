# redirect, reject, ereject, discard, keep, stop; implicit keep.
require ["reject", "fileinto", "copy"];

if header :contains "Subject" "forward me" {
  redirect "archive@example.net";
}
if header :contains "Subject" "copy me" {
  redirect :copy "backup@example.net";
}
if header :contains "Subject" "refuse me" {
  reject "We do not accept this.";
}
if header :contains "Subject" "drop me" {
  discard;
  stop;
}
if header :contains "Subject" "keep me" {
  keep;
  stop;
}
