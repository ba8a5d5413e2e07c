# vacation with the default period and subject, and vacation-seconds.
require ["vacation", "vacation-seconds"];

if header :contains "Subject" "quick" {
  vacation :seconds 3600 "Back in an hour.";
  stop;
}
vacation "I am away.";
