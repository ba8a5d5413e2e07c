/*
BEGIN:FILTER:5e1f0c3a-0000-4000-8000-000000000001
BEGIN:HEADER
eyJJRCI6IjVlMWYwYzNhIiwiRW5hYmxlZCI6dHJ1ZSwiTmFtZSI6Ik5ld3MifQ==
END:HEADER
*/
require ["fileinto"];
if header :contains "Subject" "news"
{
	fileinto "News";
}
/* END:FILTER */
#START_SIEVE_RULE1&header&Subject&contains&sale&END_SIEVE_RULE
if header :contains "Subject" "sale" {
  fileinto "Offers";
}
