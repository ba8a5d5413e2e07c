//! Small constructors for Flow syntax trees (every span empty: the tree is
//! written out as text and parsed again, see `emit`).

use weir_grammar::ast::{
    Action, Block, Compare, CompareOp, Expr, ExprKind, Ident, IfStmt, RegexLit, Span, Stmt, StrLit,
    StrPart,
};

pub fn ident(name: &str) -> Ident {
    Ident {
        name: name.to_string(),
        span: Span::default(),
    }
}

pub fn expr(kind: ExprKind) -> Expr {
    Expr {
        kind,
        span: Span::default(),
    }
}

pub fn name(n: &str) -> Expr {
    expr(ExprKind::Name(ident(n)))
}

pub fn field(x: Expr, member: &str) -> Expr {
    expr(ExprKind::Field(Box::new(x), ident(member)))
}

pub fn call(f: &str, args: Vec<Expr>) -> Expr {
    expr(ExprKind::Call(ident(f), args))
}

pub fn int(n: i64) -> Expr {
    expr(ExprKind::Int(n))
}

pub fn text(s: &str) -> Expr {
    expr(ExprKind::Str(str_lit(vec![StrPart::Text(s.to_string())])))
}

pub fn str_lit(parts: Vec<StrPart>) -> StrLit {
    StrLit {
        parts,
        triple: false,
        span: Span::default(),
    }
}

pub fn regex(pattern: String, flags: &str) -> Expr {
    expr(ExprKind::Regex(RegexLit {
        pattern,
        flags: flags.to_string(),
    }))
}

pub fn compare(op: CompareOp, lhs: Expr, rhs: Expr) -> Expr {
    expr(ExprKind::Compare(Box::new(Compare {
        op,
        all: false,
        any: false,
        lhs,
        rhs,
        bind: None,
    })))
}

pub fn not(x: Expr) -> Expr {
    expr(ExprKind::Not(Box::new(x)))
}

/// `a and b and ...`; `true` for none.
pub fn all_of(items: Vec<Expr>) -> Expr {
    items
        .into_iter()
        .reduce(|a, b| expr(ExprKind::And(Box::new(a), Box::new(b))))
        .unwrap_or_else(|| expr(ExprKind::Bool(true)))
}

/// `a or b or ...`; `false` for none.
pub fn any_of(items: Vec<Expr>) -> Expr {
    items
        .into_iter()
        .reduce(|a, b| expr(ExprKind::Or(Box::new(a), Box::new(b))))
        .unwrap_or_else(|| expr(ExprKind::Bool(false)))
}

pub fn action(name: &str, args: Vec<Expr>) -> Stmt {
    Stmt::Action(Action {
        name: ident(name),
        args,
        with: None,
        template: None,
        every: None,
        span: Span::default(),
    })
}

pub fn block(stmts: Vec<Stmt>) -> Block {
    Block {
        stmts,
        braced: true,
        span: Span::default(),
    }
}

pub fn if_stmt(cond: Expr, then: Vec<Stmt>, otherwise: Option<Block>) -> Stmt {
    Stmt::If(IfStmt {
        cond,
        then: block(then),
        otherwise,
        span: Span::default(),
    })
}
