/**
 * @file Tree-sitter grammar for Weir's Flow mail rule language (`.flow`).
 *
 * docs/language.md is the contract and grammar/src/flow.pest the parser of record;
 * this grammar follows them for highlighting, folding and structural
 * navigation in editors. Newlines end actions and test lines (docs/language.md, "Lexical structure"),
 * so an external scanner (src/scanner.c) emits a `_newline` token, but only
 * where a statement may end: everywhere else a newline is plain whitespace,
 * which is how conditions, lists and maps may span lines.
 */

/// <reference types="tree-sitter-cli/dsl" />
// @ts-check

const PREC = {
  or: 1,
  and: 2,
  not: 3,
  compare: 4,
  additive: 5,
  unary: 6,
  postfix: 7,
};

const COMPARE_OPERATORS = [
  '==', '!=', '<', '<=', '>', '>=',
  'contains', 'starts_with', 'ends_with', 'matches', 'in', 'under',
];

/** Zero or more `rule` separated by commas. */
function commaSep(rule) {
  return optional(seq(rule, repeat(seq(',', rule)), optional(',')));
}

/** A sequence of statements separated by newlines or `;`. */
function statements($, rule) {
  return seq(
    optional($._separator),
    optional(seq(rule, repeat(seq($._separator, rule)), optional($._separator))),
  );
}

module.exports = grammar({
  name: 'flow',

  word: $ => $.identifier,

  extras: $ => [/\s/, $.comment],

  // `all a < b < c` chains comparisons, which the checker rejects; either
  // reading of it is good enough to highlight.
  conflicts: $ => [[$.comparison], [$.if_statement]],

  externals: $ => [
    $._newline,
    $._triple_string_content,
    $._error_sentinel,
  ],

  rules: {
    source_file: $ => repeat($._declaration),

    _declaration: $ => choice(
      $.import_declaration,
      $.let_declaration,
      $.list_declaration,
      $.map_declaration,
      $.classifier_declaration,
      $.fn_declaration,
      $.template_declaration,
      $.rule_declaration,
      $.test_declaration,
    ),

    comment: _ => token(seq('#', /.*/)),

    identifier: _ => /[A-Za-z_][A-Za-z0-9_]*/,

    _separator: $ => repeat1(choice($._newline, ';')),

    // Declarations (docs/language.md, "Declarations").

    import_declaration: $ => seq('import', field('path', $.string)),

    let_declaration: $ => seq(
      'let',
      field('name', $.identifier),
      '=',
      field('value', $._expression),
    ),

    list_declaration: $ => seq(
      'list',
      field('name', $.identifier),
      '=',
      'file',
      field('path', $.string),
    ),

    map_declaration: $ => seq(
      'map',
      field('name', $.identifier),
      '=',
      choice(
        seq('file', field('path', $.string)),
        field('entries', $.map_literal),
      ),
    ),

    // `classifier NAME = learned ["class1", "class2", ...]`.
    classifier_declaration: $ => seq(
      'classifier',
      field('name', $.identifier),
      '=',
      'learned',
      field('classes', $.list),
    ),

    map_literal: $ => seq('{', commaSep($.map_pair), '}'),

    map_pair: $ => seq(field('key', $.string), ':', field('value', $.string)),

    fn_declaration: $ => seq(
      'fn',
      field('name', $.identifier),
      field('parameters', $.parameters),
      '=',
      field('body', $._expression),
    ),

    parameters: $ => seq('(', commaSep($.parameter), ')'),

    parameter: $ => seq(field('name', $.identifier), ':', field('type', $.type)),

    type: $ => seq(
      field('name', $.identifier),
      optional(seq('<', commaSep($.type), '>')),
    ),

    template_declaration: $ => seq(
      'template',
      field('name', $.identifier),
      '{',
      repeat(choice($.template_field, ';')),
      '}',
    ),

    template_field: $ => seq(field('key', $.identifier), '=', field('value', $.string)),

    rule_declaration: $ => seq(
      'rule',
      field('name', $.identifier),
      optional(seq('priority', optional('-'), field('priority', $.integer))),
      optional(field('shadow', 'shadow')),
      field('body', $.rule_body),
    ),

    rule_body: $ => seq(
      '{',
      optional($._separator),
      optional($.when_clause),
      $.then_clause,
      optional($._separator),
      optional(seq($.else_clause, optional($._separator))),
      '}',
    ),

    when_clause: $ => seq('when', field('condition', $._expression)),

    then_clause: $ => seq('then', $._actions),

    else_clause: $ => seq('else', $._actions),

    _actions: $ => choice($.block, $._statement),

    block: $ => seq('{', statements($, $._statement), '}'),

    _statement: $ => choice($.action, $.if_statement),

    // `then if c { } else { }`: the `else` belongs to the `if`. An `else`
    // may follow on the next line (flow.pest allows it), which takes a
    // second token of look-ahead: the conflict is left to the GLR parser.
    if_statement: $ => choice(
      seq('if', field('condition', $._expression), field('consequence', $.block)),
      prec.dynamic(1, seq(
        'if',
        field('condition', $._expression),
        field('consequence', $.block),
        optional($._newline),
        'else',
        field('alternative', choice($.block, $.if_statement)),
      )),
    ),

    // An action is its word and its arguments, all on one line. The grammar
    // does not know which words are actions: the highlight queries do.
    action: $ => prec.right(seq(
      field('name', $.identifier),
      repeat(field('argument', $._expression)),
      optional($.with_clause),
      optional($.template_clause),
    )),

    with_clause: $ => seq('with', $.map),

    template_clause: $ => seq(
      'template',
      field('name', $.identifier),
      optional(seq('every', field('period', $._expression))),
    ),

    map: $ => seq('{', commaSep($.map_entry), '}'),

    map_entry: $ => seq(field('key', $.identifier), ':', field('value', $._expression)),

    // Tests (docs/language.md, "Tests").

    test_declaration: $ => seq('test', field('name', $.string), $.test_body),

    test_body: $ => seq('{', statements($, $._test_statement), '}'),

    _test_statement: $ => choice(
      $.message_statement,
      $.envelope_statement,
      $.client_statement,
      $.now_statement,
      $.recipient_statement,
      $.rate_statement,
      $.duplicate_statement,
      $.classify_statement,
      $.expect_statement,
    ),

    // `message """..."""` is the raw message: neither escaped nor interpolated.
    message_statement: $ => seq('message', field('message', choice($.string, $.raw_string))),

    raw_string: _ => token(seq('"""', /([^"]|"[^"]|""[^"])*/, '"""')),

    envelope_statement: $ => seq(
      'envelope',
      optional(seq('from', field('from', $._expression))),
      optional(seq('to', field('to', $._expression))),
    ),

    client_statement: $ => seq(
      'client',
      optional(seq('ip', field('ip', $._expression))),
      optional(seq('helo', field('helo', $._expression))),
    ),

    // The world a test sets (docs/language.md, "Tests").
    now_statement: $ => seq('now', field('time', $._expression)),

    recipient_statement: $ => seq('recipient', field('recipient', $._expression)),

    rate_statement: $ => seq('rate', field('key', $._expression), '=', field('count', $._expression)),

    duplicate_statement: $ => seq('duplicate', field('key', $._expression)),

    // `classify NAME "class" CONFIDENCE`: the classifier's answer in this test.
    classify_statement: $ => seq(
      'classify',
      field('classifier', $.identifier),
      field('class', $._expression),
      field('confidence', $._expression),
    ),

    expect_statement: $ => seq(
      'expect',
      optional(field('negated', 'not')),
      choice(
        seq('verdict', field('verdict', $.identifier), optional(field('code', $.integer))),
        seq('stage', field('stage', $.identifier)),
        seq('matched', field('rule', $.identifier)),
        seq('score', field('operator', choice('==', '!=', '<', '<=', '>', '>=')), field('value', $._expression)),
        $.action,
      ),
    ),

    // Expressions (docs/language.md, "Expressions"), loosest first.

    _expression: $ => choice(
      $.binary_expression,
      $.not_expression,
      $.comparison,
      $.exists_expression,
      $.unary_expression,
      $.member_expression,
      $.index_expression,
      $.call,
      $.parenthesized_expression,
      $.list,
      alias($.identifier, $.name),
      $.string,
      $.regex,
      $.integer,
      $.float,
      $.size,
      $.duration,
      $.ip,
      $.cidr,
      $.boolean,
    ),

    binary_expression: $ => choice(
      prec.left(PREC.or, seq(field('left', $._expression), field('operator', 'or'), field('right', $._expression))),
      prec.left(PREC.and, seq(field('left', $._expression), field('operator', 'and'), field('right', $._expression))),
      prec.left(PREC.additive, seq(field('left', $._expression), field('operator', choice('+', '-')), field('right', $._expression))),
    ),

    not_expression: $ => prec(PREC.not, seq('not', field('operand', $._expression))),

    comparison: $ => prec.left(PREC.compare, seq(
      optional(field('all', 'all')),
      field('left', $._expression),
      field('operator', choice(...COMPARE_OPERATORS)),
      optional(field('any', 'any')),
      field('right', $._expression),
      optional(seq('as', field('binding', $.identifier))),
    )),

    exists_expression: $ => prec(PREC.compare, seq(field('operand', $._expression), 'exists')),

    unary_expression: $ => prec(PREC.unary, seq(field('operator', choice('-', '+')), field('operand', $._expression))),

    member_expression: $ => prec(PREC.postfix, seq(
      field('object', $._expression),
      '.',
      field('property', $.identifier),
      optional(field('arguments', alias($.method_arguments, $.arguments))),
    )),

    // `spam.probability("ham")`: the `(` follows the name with no space.
    method_arguments: $ => seq(token.immediate('('), commaSep($._expression), ')'),

    index_expression: $ => prec(PREC.postfix, seq(
      field('object', $._expression),
      '[',
      field('index', $._expression),
      ']',
    )),

    call: $ => prec(PREC.postfix, seq(field('function', $.identifier), field('arguments', $.arguments))),

    arguments: $ => seq('(', commaSep(choice($.lambda, $._expression)), ')'),

    // `x => EXPR`: the element binding of `some(LIST, x => EXPR)` and `every`.
    lambda: $ => seq(field('parameter', $.identifier), '=>', field('body', $._expression)),

    parenthesized_expression: $ => seq('(', $._expression, ')'),

    list: $ => seq('[', commaSep($._expression), ']'),

    // Literals (docs/language.md, "Lexical structure").

    boolean: _ => choice('true', 'false'),

    integer: _ => /\d+/,

    float: _ => /\d+\.\d+/,

    size: _ => /\d+(\.\d+)?[KMG]/,

    duration: _ => /\d+(\.\d+)?[smhd]/,

    ip: _ => token(choice(
      /\d{1,3}\.\d{1,3}\.\d{1,3}\.\d{1,3}/,
      /[0-9A-Fa-f]{0,4}(:[0-9A-Fa-f]{0,4}){2,7}/,
      /[0-9A-Fa-f]{0,4}(:[0-9A-Fa-f]{0,4}){1,6}:\d{1,3}\.\d{1,3}\.\d{1,3}\.\d{1,3}/,
    )),

    cidr: _ => token(choice(
      /\d{1,3}\.\d{1,3}\.\d{1,3}\.\d{1,3}\/\d{1,3}/,
      /[0-9A-Fa-f]{0,4}(:[0-9A-Fa-f]{0,4}){2,7}\/\d{1,3}/,
      /[0-9A-Fa-f]{0,4}(:[0-9A-Fa-f]{0,4}){1,6}:\d{1,3}\.\d{1,3}\.\d{1,3}\.\d{1,3}\/\d{1,3}/,
    )),

    string: $ => choice(
      seq(
        '"',
        repeat(choice(
          alias(token.immediate(prec(1, /[^"\\$\n]+/)), $.string_content),
          alias(token.immediate(prec(1, '$')), $.string_content),
          $.escape_sequence,
          $.interpolation,
        )),
        token.immediate('"'),
      ),
      seq(
        '"""',
        repeat(choice(
          alias($._triple_string_content, $.string_content),
          $.escape_sequence,
          $.interpolation,
        )),
        '"""',
      ),
    ),

    escape_sequence: _ => token.immediate(prec(1, seq(
      '\\',
      choice(/[nrt"\\$]/, /u\{[0-9A-Fa-f]+\}/),
    ))),

    interpolation: $ => seq(token.immediate(prec(1, '${')), $._expression, '}'),

    regex: $ => seq(
      field('pattern', $.regex_pattern),
      optional(field('flags', $.regex_flags)),
    ),

    regex_pattern: _ => token(seq('/', /([^/\\\n]|\\.)+/, '/')),

    regex_flags: _ => token.immediate(/[a-z]+/),
  },
});
