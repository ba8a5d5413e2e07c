# date and currentdate (RFC 5260) with zones.
require ["date", "relational", "imap4flags"];

if date :zone "+0000" :is "date" "year" "2024" {
  addflag "sent-2024";
}
# Guarded by a Date with a time in it: without a Date that parses, Sieve's
# test is false and Weir's `date` is `now`, whose hour depends on the clock.
if allof (header :contains "Date" ":", date :zone "+0100" :value "ge" "date" "hour" "18") {
  addflag "evening-cet";
}
if currentdate :zone "+0000" :value "ge" "year" "2020" {
  addflag "after-2020";
}
if currentdate :zone "-0500" :is "weekday" "0" {
  addflag "sunday-ny";
}
if date :zone "+0000" :is "date" "time" "20:15:00" {
  addflag "quarter-past-eight";
}
# Guarded by the header's text: without a Date that parses, Weir's `date`
# is `now`, whose second depends on the clock.
if allof (header :contains "Date" ":44 ", date :zone "+0000" :value "ge" "date" "second" "40") {
  addflag "late-second";
}
