# vacation (RFC 5230) with :days, :subject, :from, :addresses, :handle.
require ["vacation", "fileinto"];

if header :contains "Subject" "newsletter" {
  fileinto "News";
  stop;
}
vacation :days 3 :subject "Away" :from "alex@example.com"
  :addresses ["alex@example.com", "a.smith@example.com"] :handle "away"
  text:
I am away until Monday.
..and this line started with a dot.
.
;
