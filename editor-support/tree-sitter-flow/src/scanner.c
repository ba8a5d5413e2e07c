// External scanner for the Flow grammar.
//
// `_newline` ends an action or a test line. It is emitted only where the
// grammar says a statement may end (valid_symbols), so that elsewhere, in a
// condition or a list spanning lines, a newline stays plain whitespace.
//
// `_triple_string_content` is the text of a `"""..."""` string up to the
// next escape, interpolation or closing `"""`: a regular expression cannot
// say "not three quotes" without look-ahead.

#include "tree_sitter/parser.h"

enum TokenType {
  NEWLINE,
  TRIPLE_STRING_CONTENT,
  ERROR_SENTINEL,
};

void *tree_sitter_flow_external_scanner_create(void) { return NULL; }

void tree_sitter_flow_external_scanner_destroy(void *payload) { (void)payload; }

unsigned tree_sitter_flow_external_scanner_serialize(void *payload, char *buffer) {
  (void)payload;
  (void)buffer;
  return 0;
}

void tree_sitter_flow_external_scanner_deserialize(void *payload, const char *buffer, unsigned length) {
  (void)payload;
  (void)buffer;
  (void)length;
}

static bool scan_triple_string_content(TSLexer *lexer) {
  bool has_content = false;
  lexer->result_symbol = TRIPLE_STRING_CONTENT;
  for (;;) {
    lexer->mark_end(lexer);
    int32_t c = lexer->lookahead;
    if (lexer->eof(lexer)) {
      return has_content;
    }
    if (c == '\\') {
      return has_content;
    }
    if (c == '$') {
      lexer->advance(lexer, false);
      if (lexer->lookahead == '{') {
        return has_content;
      }
      has_content = true;
      continue;
    }
    if (c == '"') {
      int quotes = 0;
      while (lexer->lookahead == '"' && quotes < 3) {
        lexer->advance(lexer, false);
        quotes++;
      }
      if (quotes == 3) {
        // The closing quotes: the content ends before them (mark_end above).
        return has_content;
      }
      has_content = true;
      continue;
    }
    lexer->advance(lexer, false);
    has_content = true;
  }
}

bool tree_sitter_flow_external_scanner_scan(void *payload, TSLexer *lexer, const bool *valid_symbols) {
  (void)payload;
  // During error recovery every symbol is valid: let the internal lexer decide.
  if (valid_symbols[ERROR_SENTINEL]) {
    return false;
  }
  if (valid_symbols[TRIPLE_STRING_CONTENT]) {
    return scan_triple_string_content(lexer);
  }
  if (valid_symbols[NEWLINE]) {
    while (lexer->lookahead == ' ' || lexer->lookahead == '\t' || lexer->lookahead == '\r') {
      lexer->advance(lexer, true);
    }
    if (lexer->lookahead != '\n') {
      return false;
    }
    lexer->advance(lexer, false);
    lexer->mark_end(lexer);
    lexer->result_symbol = NEWLINE;
    return true;
  }
  return false;
}
