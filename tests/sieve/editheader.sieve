# editheader (RFC 5293).
require ["editheader"];

addheader :last "X-Imported" "by weir";
if exists "X-Internal" {
  deleteheader "X-Internal";
}
