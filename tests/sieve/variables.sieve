# variables: ${1} from :matches and :regex, set with modifiers.
require ["fileinto", "variables", "regex", "imap4flags"];

set "archive" "Archive";
if header :matches "Subject" "[*] *" {
  set :lower "tag" "${1}";
  addflag "tag-${tag}";
}
if header :regex "List-Id" "<([a-z0-9-]+)[.]" {
  fileinto "${archive}.Lists.${1}";
  stop;
}
if string :is "${archive}" "Archive" {
  addflag "constant";
}
