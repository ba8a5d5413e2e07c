//! Learned classifiers (docs/language.md ("Classifiers")): the
//! declarations, checked once for the whole ruleset, and the members
//! rules read (`NAME.class`, `NAME.confidence`, `NAME.probability("c")`),
//! with the class names known to the checker.

use weir_grammar::ast::{self, ExprKind, Ident, Item, Span};
use weir_stdlib::{Type, Value};

use super::{Annotate, Checker, Ctx, Place};
use crate::codes;
use crate::hints;
use crate::ir::{ClassMember, Expr};
use crate::names::{DeclKind, Resolution};

/// A classifier of the ruleset: its name and its classes in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClassifierInfo {
    /// The name rules and `weir learn` use.
    pub name: String,
    /// Its classes, two or more, in declaration order.
    pub classes: Vec<String>,
}

/// The members of a classifier, with their types and docs.
pub(crate) const MEMBERS: &[(&str, &str)] = &[
    (
        "class",
        "The most probable class, or `\"\"` while the classifier has learned too little or is unsure.",
    ),
    (
        "confidence",
        "The probability of the most probable class, 0 to 1.",
    ),
    (
        "probability",
        "`probability(\"c\")`: the probability of class `c`, 0 to 1.",
    ),
];

impl Checker<'_> {
    /// Checks every `classifier` declaration of the ruleset and returns
    /// them in load order; a name declared by two files is an error, since
    /// the learned state is kept by name.
    pub(crate) fn classifiers(&mut self) -> Vec<ClassifierInfo> {
        let mut out: Vec<ClassifierInfo> = Vec::new();
        let mut first_span: Vec<(usize, Span)> = Vec::new();
        for unit in 0..self.loaded.units.len() {
            for item in &self.loaded.units[unit].ast.items {
                let Item::Classifier(c) = item else { continue };
                if let Some(i) = out.iter().position(|o| o.name == c.name.name) {
                    let (u, span) = first_span[i];
                    if u != unit {
                        let other = self.file(u);
                        self.error(
                            codes::CLASSIFIER,
                            unit,
                            c.name.span,
                            format!("classifier `{}` is declared twice", c.name.name),
                        )
                        .set_label("declared again")
                        .add_related(other, span, "first declared here")
                        .set_hint("what a classifier learned is kept by its name: give each one its own name");
                    }
                    continue;
                }
                if let Some(classes) = self.class_list(unit, c) {
                    out.push(ClassifierInfo {
                        name: c.name.name.clone(),
                        classes,
                    });
                    first_span.push((unit, c.name.span));
                }
            }
        }
        out
    }

    fn class_list(&mut self, unit: usize, c: &ast::ClassifierDecl) -> Option<Vec<String>> {
        if c.classes.len() < 2 {
            self.error(
                codes::CLASSIFIER,
                unit,
                c.span,
                format!("classifier `{}` needs two or more classes", c.name.name),
            )
            .set_label(format!("{} class(es)", c.classes.len()))
            .set_hint("write them as strings: `learned [\"spam\", \"ham\"]`");
            return None;
        }
        let mut classes: Vec<String> = Vec::new();
        let mut ok = true;
        for (class, span) in &c.classes {
            if class.is_empty() {
                self.error(codes::CLASSIFIER, unit, *span, "a class cannot be empty")
                    .set_label("empty class")
                    .set_hint("`\"\"` is what `.class` reads when the classifier is unsure");
                ok = false;
            } else if classes.contains(class) {
                self.error(
                    codes::CLASSIFIER,
                    unit,
                    *span,
                    format!("class `{class}` is listed twice"),
                )
                .set_label("listed again");
                ok = false;
            } else {
                classes.push(class.clone());
            }
        }
        ok.then_some(classes)
    }

    /// The classifier a bare name refers to, if it is one.
    pub(crate) fn classifier_named(&mut self, cx: Ctx, base: &ast::Expr) -> Option<ClassifierInfo> {
        let ExprKind::Name(id) = &base.kind else {
            return None;
        };
        let Resolution::Found(decl) = self.scopes.resolve(cx.unit, &id.name) else {
            return None;
        };
        if decl.kind != DeclKind::Classifier {
            return None;
        }
        let decl = decl.clone();
        self.used.insert(decl.id);
        let Item::Classifier(c) = &self.loaded.units[decl.id.unit].ast.items[decl.id.item] else {
            return None;
        };
        Some(ClassifierInfo {
            name: c.name.name.clone(),
            classes: c.classes.iter().map(|(c, _)| c.clone()).collect(),
        })
    }

    /// `NAME.class` or `NAME.confidence`.
    pub(crate) fn classifier_field(
        &mut self,
        cx: Ctx,
        info: &ClassifierInfo,
        member: &Ident,
    ) -> Option<(Expr, Type)> {
        self.classifier_place(cx, member.span)?;
        let name = info.name.as_str().into();
        match member.name.as_str() {
            "class" => Some((Expr::Classifier(name, ClassMember::Class), Type::String)),
            "confidence" => Some((Expr::Classifier(name, ClassMember::Confidence), Type::Float)),
            "probability" => {
                self.error(
                    codes::CLASSIFIER,
                    cx.unit,
                    member.span,
                    "`probability` takes the class",
                )
                .set_label("no class given")
                .set_hint(format!(
                    "write `{}.probability(\"{}\")`",
                    info.name, info.classes[0]
                ));
                None
            }
            _ => {
                self.unknown_classifier_member(cx, info, member);
                None
            }
        }
    }

    /// `NAME.probability("class")`: the class must be one of the
    /// classifier's, written as a literal.
    pub(crate) fn classifier_method(
        &mut self,
        cx: Ctx,
        info: &ClassifierInfo,
        member: &Ident,
        args: &[ast::Expr],
    ) -> Option<(Expr, Type)> {
        if member.name != "probability" {
            self.unknown_classifier_member(cx, info, member);
            return None;
        }
        self.classifier_place(cx, member.span)?;
        let [arg] = args else {
            self.arg_count(cx.unit, member.span, "probability", 1, args.len());
            return None;
        };
        let class = match self.expr(cx, arg)? {
            (Expr::Const(Value::Str(s)), _) => s.to_string(),
            (_, t) => {
                self.mismatch(cx.unit, arg.span, "a class name written as a string", &t);
                return None;
            }
        };
        self.known_class(cx.unit, arg.span, info, &class)?;
        Some((
            Expr::Classifier(info.name.as_str().into(), ClassMember::Probability(class)),
            Type::Float,
        ))
    }

    /// Reports a class the classifier does not have, with a did-you-mean.
    pub(crate) fn known_class(
        &mut self,
        unit: usize,
        span: Span,
        info: &ClassifierInfo,
        class: &str,
    ) -> Option<()> {
        if info.classes.iter().any(|c| c == class) {
            return Some(());
        }
        let hint = match hints::closest(class, info.classes.iter().map(String::as_str)) {
            Some(near) => format!("did you mean \"{near}\"?"),
            None => format!(
                "the classes of `{}` are {}",
                info.name,
                quoted(&info.classes)
            ),
        };
        self.error(
            codes::CLASSIFIER,
            unit,
            span,
            format!("classifier `{}` has no class `{class}`", info.name),
        )
        .set_label("unknown class")
        .set_hint(hint);
        None
    }

    fn unknown_classifier_member(&mut self, cx: Ctx, info: &ClassifierInfo, member: &Ident) {
        let names = MEMBERS.iter().map(|(n, _)| *n);
        let hint = hints::did_you_mean(&member.name, names).unwrap_or_else(|| {
            "its members are `class`, `confidence` and `probability(\"c\")`".into()
        });
        self.error(
            codes::CLASSIFIER,
            cx.unit,
            member.span,
            format!("classifier `{}` has no member `{}`", info.name, member.name),
        )
        .set_label("unknown member")
        .set_hint(hint);
    }

    /// A classifier reads the whole message: not in a `let`.
    fn classifier_place(&mut self, cx: Ctx, span: Span) -> Option<()> {
        if cx.place == Place::Let {
            self.error(
                codes::NOT_CONSTANT,
                cx.unit,
                span,
                "a `let` cannot read a classifier",
            )
            .set_label("a classifier's answer")
            .set_hint("use a `fn` for a value computed from the message");
            return None;
        }
        Some(())
    }
}

fn quoted(classes: &[String]) -> String {
    classes
        .iter()
        .map(|c| format!("\"{c}\""))
        .collect::<Vec<_>>()
        .join(", ")
}
