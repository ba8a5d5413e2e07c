require ["fileinto","imap4flags","vacation"];
# rule:[Mailing lists]
if anyof (header :contains "list-id" "dev.example.org", header :contains "subject" "[dev]")
{
	fileinto "INBOX.Lists.dev";
	stop;
}
# rule:[Boss]
if allof (address :is "from" "boss@example.com")
{
	addflag "\\Flagged";
	keep;
}
# rule:[Old newsletter]
if false # header :contains "from" "news@old.example"
{
	fileinto "Trash";
}
# rule:[Out of office]
if true
{
	vacation :days 7 :subject "Out of office" "I am away.";
}
