# include (RFC 6609), inlined.
require ["include", "fileinto"];

include :personal "included";
if header :contains "Subject" "after include" {
  fileinto "After";
}
