//! Conditions over several metrics of one equipment, in a small typed language parsed at config
//! time. There is no way to call code: only metrics, literals, arithmetic, comparisons, `and`,
//! `or`, `not` and `abs()`.
//!
//! ```text
//! pressure > 0.2 and not door_closed_locked
//! car_status == "running" and abs(speed) > 1.15 * 2.5
//! ```
//!
//! Types are number, bool and text. A metric takes its type from the MQTT mapping that produces
//! it; a metric no mapping names (a Modbus one) takes the type its use implies, and using it
//! with two types is an error. At run time a metric without a value, or with a value of another
//! type, makes the condition unknown, and an unknown condition does not raise.
//!
//! Size: about 690 lines with its tests: the lexer, parser, type checker and evaluator of one
//! small language.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

use crate::model::Value;
use crate::model::ValueType;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Type {
    Number,
    Bool,
    Text,
}

impl Type {
    fn as_str(self) -> &'static str {
        match self {
            Type::Number => "a number",
            Type::Bool => "a bool",
            Type::Text => "text",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum BinOp {
    And,
    Or,
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
    Add,
    Sub,
    Mul,
    Div,
}

/// A parsed, type-checked expression.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Expr {
    Number(f64),
    Bool(bool),
    Text(String),
    Metric(String),
    Not(Box<Expr>),
    Neg(Box<Expr>),
    Abs(Box<Expr>),
    Binary(BinOp, Box<Expr>, Box<Expr>),
}

/// A parse or type error at a byte offset into the expression.
#[derive(Debug, Clone, PartialEq)]
pub struct ExprError {
    pub offset: usize,
    pub message: String,
    pub hint: Option<String>,
}

impl ExprError {
    fn new(offset: usize, message: impl Into<String>) -> Self {
        ExprError {
            offset,
            message: message.into(),
            hint: None,
        }
    }

    fn hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }
}

#[derive(Debug, Clone, PartialEq)]
enum Token {
    Number(f64),
    Text(String),
    Ident(String),
    Op(&'static str),
    Open,
    Close,
    End,
}

fn tokenize(source: &str) -> Result<Vec<(Token, usize)>, ExprError> {
    let mut tokens = Vec::new();
    let bytes = source.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        let c = bytes[i];
        if c.is_ascii_whitespace() {
            i += 1;
            continue;
        }
        let start = i;
        if c.is_ascii_digit() || (c == b'.' && bytes.get(i + 1).is_some_and(u8::is_ascii_digit)) {
            while i < bytes.len()
                && (bytes[i].is_ascii_digit()
                    || bytes[i] == b'.'
                    || bytes[i] == b'e'
                    || bytes[i] == b'E'
                    || ((bytes[i] == b'-' || bytes[i] == b'+')
                        && matches!(bytes[i - 1], b'e' | b'E')))
            {
                i += 1;
            }
            let text = &source[start..i];
            let n: f64 = text
                .parse()
                .map_err(|_| ExprError::new(start, format!("`{text}` is not a number")))?;
            tokens.push((Token::Number(n), start));
        } else if c.is_ascii_alphabetic() || c == b'_' {
            while i < bytes.len()
                && (bytes[i].is_ascii_alphanumeric() || bytes[i] == b'_' || bytes[i] == b'.')
            {
                i += 1;
            }
            tokens.push((Token::Ident(source[start..i].to_owned()), start));
        } else if c == b'"' || c == b'\'' {
            i += 1;
            while i < bytes.len() && bytes[i] != c {
                i += 1;
            }
            if i >= bytes.len() {
                return Err(ExprError::new(start, "text is not closed")
                    .hint("close it with the same quote it starts with"));
            }
            tokens.push((Token::Text(source[start + 1..i].to_owned()), start));
            i += 1;
        } else if c == b'(' {
            tokens.push((Token::Open, start));
            i += 1;
        } else if c == b')' {
            tokens.push((Token::Close, start));
            i += 1;
        } else {
            let two = source.get(i..i + 2).unwrap_or("");
            let op = match two {
                "==" | "!=" | "<=" | ">=" | "&&" | "||" => {
                    i += 2;
                    match two {
                        "==" => "==",
                        "!=" => "!=",
                        "<=" => "<=",
                        ">=" => ">=",
                        "&&" => "and",
                        _ => "or",
                    }
                }
                _ => {
                    i += 1;
                    match c {
                        b'<' => "<",
                        b'>' => ">",
                        b'+' => "+",
                        b'-' => "-",
                        b'*' => "*",
                        b'/' => "/",
                        b'!' => "not",
                        b'=' => {
                            return Err(ExprError::new(start, "`=` is not an operator")
                                .hint("compare with `==`"))
                        }
                        _ => {
                            let ch = source[start..].chars().next().unwrap_or('?');
                            return Err(ExprError::new(start, format!("unexpected `{ch}`"))
                                .hint("expressions use metric names, numbers, \"text\", true, false, + - * /, == != < <= > >=, and, or, not, abs() and parentheses"));
                        }
                    }
                }
            };
            tokens.push((Token::Op(op), start));
        }
    }
    tokens.push((Token::End, source.len()));
    Ok(tokens)
}

/// The type of a subexpression, or a metric whose type the context has to decide.
#[derive(Debug, Clone, PartialEq)]
enum Ty {
    Known(Type),
    Open(String),
}

struct Parser<'a> {
    tokens: Vec<(Token, usize)>,
    pos: usize,
    known: &'a HashMap<String, ValueType>,
    inferred: HashMap<String, Type>,
}

/// Parses and type-checks a condition; the whole expression must be a bool.
pub fn parse(source: &str, metric_types: &HashMap<String, ValueType>) -> Result<Expr, ExprError> {
    let mut parser = Parser {
        tokens: tokenize(source)?,
        pos: 0,
        known: metric_types,
        inferred: HashMap::new(),
    };
    if parser.tokens.len() == 1 {
        return Err(ExprError::new(0, "the condition is empty")
            .hint("for example: pressure > 0.2 and not door_closed_locked"));
    }
    let (expr, ty, at) = parser.or()?;
    parser.require(&ty, Type::Bool, at, "the condition")?;
    match &parser.tokens[parser.pos] {
        (Token::End, _) => Ok(expr),
        (_, offset) => Err(
            ExprError::new(*offset, "unexpected text after the condition")
                .hint("join conditions with `and` or `or`"),
        ),
    }
}

type Parsed = (Expr, Ty, usize);

impl Parser<'_> {
    fn peek(&self) -> &Token {
        &self.tokens[self.pos].0
    }

    fn offset(&self) -> usize {
        self.tokens[self.pos].1
    }

    fn is_op(&self, op: &str) -> bool {
        match self.peek() {
            Token::Op(o) => *o == op,
            Token::Ident(word) => word == op && matches!(op, "and" | "or" | "not"),
            _ => false,
        }
    }

    /// Checks (or, for an open metric, decides) that a subexpression has type `want`.
    fn require(&mut self, ty: &Ty, want: Type, at: usize, what: &str) -> Result<(), ExprError> {
        match ty {
            Ty::Known(t) if *t == want => Ok(()),
            Ty::Known(t) => Err(ExprError::new(
                at,
                format!("{what} must be {}, not {}", want.as_str(), t.as_str()),
            )),
            Ty::Open(metric) => match self.inferred.get(metric) {
                Some(t) if *t != want => Err(ExprError::new(
                    at,
                    format!(
                        "metric `{metric}` is used as {} here and as {} before",
                        want.as_str(),
                        t.as_str()
                    ),
                )),
                _ => {
                    self.inferred.insert(metric.clone(), want);
                    Ok(())
                }
            },
        }
    }

    fn resolved(&self, ty: &Ty) -> Option<Type> {
        match ty {
            Ty::Known(t) => Some(*t),
            Ty::Open(m) => self.inferred.get(m).copied(),
        }
    }

    fn or(&mut self) -> Result<Parsed, ExprError> {
        let (mut left, ty, at) = self.and()?;
        if !self.is_op("or") {
            return Ok((left, ty, at));
        }
        self.require(&ty, Type::Bool, at, "each side of `or`")?;
        while self.is_op("or") {
            self.pos += 1;
            let (right, rty, rat) = self.and()?;
            self.require(&rty, Type::Bool, rat, "each side of `or`")?;
            left = Expr::Binary(BinOp::Or, Box::new(left), Box::new(right));
        }
        Ok((left, Ty::Known(Type::Bool), at))
    }

    fn and(&mut self) -> Result<Parsed, ExprError> {
        let (mut left, ty, at) = self.not()?;
        if !self.is_op("and") {
            return Ok((left, ty, at));
        }
        self.require(&ty, Type::Bool, at, "each side of `and`")?;
        while self.is_op("and") {
            self.pos += 1;
            let (right, rty, rat) = self.not()?;
            self.require(&rty, Type::Bool, rat, "each side of `and`")?;
            left = Expr::Binary(BinOp::And, Box::new(left), Box::new(right));
        }
        Ok((left, Ty::Known(Type::Bool), at))
    }

    fn not(&mut self) -> Result<Parsed, ExprError> {
        if self.is_op("not") {
            let at = self.offset();
            self.pos += 1;
            let (inner, ty, inner_at) = self.not()?;
            self.require(&ty, Type::Bool, inner_at, "what follows `not`")?;
            return Ok((Expr::Not(Box::new(inner)), Ty::Known(Type::Bool), at));
        }
        self.comparison()
    }

    fn comparison(&mut self) -> Result<Parsed, ExprError> {
        let (left, lty, at) = self.additive()?;
        let op = match self.peek() {
            Token::Op("==") => BinOp::Eq,
            Token::Op("!=") => BinOp::Ne,
            Token::Op("<") => BinOp::Lt,
            Token::Op("<=") => BinOp::Le,
            Token::Op(">") => BinOp::Gt,
            Token::Op(">=") => BinOp::Ge,
            _ => return Ok((left, lty, at)),
        };
        let op_at = self.offset();
        self.pos += 1;
        let (right, rty, rat) = self.additive()?;
        let ordering = !matches!(op, BinOp::Eq | BinOp::Ne);
        let side_type = match (self.resolved(&lty), self.resolved(&rty)) {
            (Some(t), _) | (None, Some(t)) => t,
            (None, None) if ordering => Type::Number,
            (None, None) => {
                return Err(ExprError::new(
                    op_at,
                    "cannot tell whether this compares numbers, bools or text",
                )
                .hint("compare a metric with a literal, or map the metrics with a type"))
            }
        };
        if ordering && side_type != Type::Number {
            return Err(ExprError::new(
                op_at,
                format!("only numbers can be ordered, not {}", side_type.as_str()),
            ));
        }
        self.require(&lty, side_type, at, "the left side")?;
        self.require(&rty, side_type, rat, "the right side")?;
        if matches!(
            self.peek(),
            Token::Op("==" | "!=" | "<" | "<=" | ">" | ">=")
        ) {
            return Err(ExprError::new(self.offset(), "comparisons do not chain")
                .hint("write a < b and b < c"));
        }
        Ok((
            Expr::Binary(op, Box::new(left), Box::new(right)),
            Ty::Known(Type::Bool),
            at,
        ))
    }

    fn additive(&mut self) -> Result<Parsed, ExprError> {
        let (mut left, mut ty, at) = self.multiplicative()?;
        loop {
            let op = match self.peek() {
                Token::Op("+") => BinOp::Add,
                Token::Op("-") => BinOp::Sub,
                _ => return Ok((left, ty, at)),
            };
            self.require(&ty, Type::Number, at, "arithmetic")?;
            self.pos += 1;
            let (right, rty, rat) = self.multiplicative()?;
            self.require(&rty, Type::Number, rat, "arithmetic")?;
            left = Expr::Binary(op, Box::new(left), Box::new(right));
            ty = Ty::Known(Type::Number);
        }
    }

    fn multiplicative(&mut self) -> Result<Parsed, ExprError> {
        let (mut left, mut ty, at) = self.unary()?;
        loop {
            let op = match self.peek() {
                Token::Op("*") => BinOp::Mul,
                Token::Op("/") => BinOp::Div,
                _ => return Ok((left, ty, at)),
            };
            self.require(&ty, Type::Number, at, "arithmetic")?;
            self.pos += 1;
            let (right, rty, rat) = self.unary()?;
            self.require(&rty, Type::Number, rat, "arithmetic")?;
            left = Expr::Binary(op, Box::new(left), Box::new(right));
            ty = Ty::Known(Type::Number);
        }
    }

    fn unary(&mut self) -> Result<Parsed, ExprError> {
        if matches!(self.peek(), Token::Op("-")) {
            let at = self.offset();
            self.pos += 1;
            let (inner, ty, inner_at) = self.unary()?;
            self.require(&ty, Type::Number, inner_at, "what follows `-`")?;
            return Ok((Expr::Neg(Box::new(inner)), Ty::Known(Type::Number), at));
        }
        self.primary()
    }

    fn primary(&mut self) -> Result<Parsed, ExprError> {
        let (token, at) = self.tokens[self.pos].clone();
        self.pos += 1;
        match token {
            Token::Number(n) => Ok((Expr::Number(n), Ty::Known(Type::Number), at)),
            Token::Text(t) => Ok((Expr::Text(t), Ty::Known(Type::Text), at)),
            Token::Open => {
                let (inner, ty, _) = self.or()?;
                if self.peek() != &Token::Close {
                    return Err(ExprError::new(self.offset(), "expected `)`")
                        .hint("every `(` needs its `)`"));
                }
                self.pos += 1;
                Ok((inner, ty, at))
            }
            Token::Ident(word) => match word.as_str() {
                "true" => Ok((Expr::Bool(true), Ty::Known(Type::Bool), at)),
                "false" => Ok((Expr::Bool(false), Ty::Known(Type::Bool), at)),
                "and" | "or" | "not" => Err(ExprError::new(
                    at,
                    format!("expected a value, found `{word}`"),
                )),
                "abs" if self.peek() == &Token::Open => {
                    self.pos += 1;
                    let (inner, ty, inner_at) = self.or()?;
                    self.require(&ty, Type::Number, inner_at, "the argument of abs()")?;
                    if self.peek() != &Token::Close {
                        return Err(ExprError::new(self.offset(), "expected `)`"));
                    }
                    self.pos += 1;
                    Ok((Expr::Abs(Box::new(inner)), Ty::Known(Type::Number), at))
                }
                _ if self.peek() == &Token::Open => {
                    Err(ExprError::new(at, format!("`{word}` is not a function"))
                        .hint("the only function is abs()"))
                }
                _ => {
                    let ty = match self.known.get(&word) {
                        Some(ValueType::Number) => Ty::Known(Type::Number),
                        Some(ValueType::Bool) => Ty::Known(Type::Bool),
                        Some(ValueType::Text) => Ty::Known(Type::Text),
                        None => Ty::Open(word.clone()),
                    };
                    Ok((Expr::Metric(word), ty, at))
                }
            },
            Token::End => Err(ExprError::new(at, "the condition ends too early")),
            Token::Close => Err(ExprError::new(at, "unexpected `)`")),
            Token::Op(op) => Err(ExprError::new(
                at,
                format!("expected a value, found `{op}`"),
            )),
        }
    }
}

/// A value during evaluation.
#[derive(Debug, Clone, PartialEq)]
enum Val<'a> {
    Number(f64),
    Bool(bool),
    Text(&'a str),
}

impl Expr {
    /// The metric names this expression reads.
    pub fn metrics(&self) -> Vec<&str> {
        let mut out = Vec::new();
        self.collect(&mut out);
        out.sort_unstable();
        out.dedup();
        out
    }

    fn collect<'a>(&'a self, out: &mut Vec<&'a str>) {
        match self {
            Expr::Metric(m) => out.push(m),
            Expr::Not(e) | Expr::Neg(e) | Expr::Abs(e) => e.collect(out),
            Expr::Binary(_, a, b) => {
                a.collect(out);
                b.collect(out);
            }
            Expr::Number(_) | Expr::Bool(_) | Expr::Text(_) => {}
        }
    }

    /// `Some(true)` when the condition holds, `None` when it cannot be decided.
    pub fn holds<'v>(&'v self, lookup: &impl Fn(&str) -> Option<&'v Value>) -> Option<bool> {
        match self.eval(lookup)? {
            Val::Bool(b) => Some(b),
            _ => None,
        }
    }

    fn eval<'v>(&'v self, lookup: &impl Fn(&str) -> Option<&'v Value>) -> Option<Val<'v>> {
        Some(match self {
            Expr::Number(n) => Val::Number(*n),
            Expr::Bool(b) => Val::Bool(*b),
            Expr::Text(t) => Val::Text(t),
            Expr::Metric(m) => match lookup(m)? {
                Value::Number(n) => Val::Number(*n),
                Value::Bool(b) => Val::Bool(*b),
                Value::Text(t) => Val::Text(t),
            },
            Expr::Not(e) => Val::Bool(!e.eval(lookup)?.as_bool()?),
            Expr::Neg(e) => Val::Number(-e.eval(lookup)?.as_number()?),
            Expr::Abs(e) => Val::Number(e.eval(lookup)?.as_number()?.abs()),
            Expr::Binary(BinOp::And, a, b) => {
                // false and unknown is false; unknown and true is unknown.
                match a.eval(lookup).and_then(|v| v.as_bool()) {
                    Some(false) => Val::Bool(false),
                    left => {
                        let right = b.eval(lookup)?.as_bool()?;
                        if !right {
                            Val::Bool(false)
                        } else {
                            Val::Bool(left?)
                        }
                    }
                }
            }
            Expr::Binary(BinOp::Or, a, b) => match a.eval(lookup).and_then(|v| v.as_bool()) {
                Some(true) => Val::Bool(true),
                left => {
                    let right = b.eval(lookup)?.as_bool()?;
                    if right {
                        Val::Bool(true)
                    } else {
                        Val::Bool(left?)
                    }
                }
            },
            Expr::Binary(op, a, b) => {
                let (x, y) = (a.eval(lookup)?, b.eval(lookup)?);
                match op {
                    BinOp::Eq => Val::Bool(x == y),
                    BinOp::Ne => Val::Bool(x != y),
                    _ => {
                        let (x, y) = (x.as_number()?, y.as_number()?);
                        let n = match op {
                            BinOp::Lt => return Some(Val::Bool(x < y)),
                            BinOp::Le => return Some(Val::Bool(x <= y)),
                            BinOp::Gt => return Some(Val::Bool(x > y)),
                            BinOp::Ge => return Some(Val::Bool(x >= y)),
                            BinOp::Add => x + y,
                            BinOp::Sub => x - y,
                            BinOp::Mul => x * y,
                            _ => x / y,
                        };
                        if !n.is_finite() {
                            return None;
                        }
                        Val::Number(n)
                    }
                }
            }
        })
    }
}

impl Val<'_> {
    fn as_bool(&self) -> Option<bool> {
        match self {
            Val::Bool(b) => Some(*b),
            _ => None,
        }
    }

    fn as_number(&self) -> Option<f64> {
        match self {
            Val::Number(n) => Some(*n),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn types() -> HashMap<String, ValueType> {
        [
            ("pressure", ValueType::Number),
            ("door_closed_locked", ValueType::Bool),
            ("car_status", ValueType::Text),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect()
    }

    fn err(source: &str) -> (usize, String) {
        let e = parse(source, &types()).unwrap_err();
        (e.offset, e.message)
    }

    #[test]
    fn parses_and_evaluates_a_condition_over_several_metrics() {
        let e = parse("pressure > 0.2 and not door_closed_locked", &types()).unwrap();
        let values: HashMap<&str, Value> = [
            ("pressure", Value::Number(0.3)),
            ("door_closed_locked", Value::Bool(false)),
        ]
        .into_iter()
        .collect();
        assert_eq!(e.holds(&|m| values.get(m)), Some(true));
        assert_eq!(e.metrics(), vec!["door_closed_locked", "pressure"]);
        let none: HashMap<&str, Value> = HashMap::new();
        assert_eq!(e.holds(&|m| none.get(m)), None);
    }

    #[test]
    fn precedence_and_arithmetic() {
        let e = parse(
            "abs(temp - 20) * 2 >= 10 or car_status == \"running\"",
            &types(),
        )
        .unwrap();
        let values: HashMap<&str, Value> = [
            ("temp", Value::Number(14.0)),
            ("car_status", Value::Text("stopped".into())),
        ]
        .into_iter()
        .collect();
        assert_eq!(e.holds(&|m| values.get(m)), Some(true));
    }

    #[test]
    fn errors_point_at_the_offending_place() {
        assert_eq!(
            err("pressure > "),
            (11, "the condition ends too early".to_owned())
        );
        assert_eq!(
            err("pressure and door_closed_locked"),
            (
                0,
                "each side of `and` must be a bool, not a number".to_owned()
            )
        );
        assert_eq!(
            err("pressure = 1"),
            (9, "`=` is not an operator".to_owned())
        );
        assert_eq!(
            err("car_status > 1"),
            (11, "only numbers can be ordered, not text".to_owned())
        );
        assert_eq!(
            err("x > 1 and x"),
            (
                10,
                "metric `x` is used as a bool here and as a number before".to_owned()
            )
        );
        assert_eq!(
            err("system(1)"),
            (0, "`system` is not a function".to_owned())
        );
        assert_eq!(
            err("pressure + 1"),
            (0, "the condition must be a bool, not a number".to_owned())
        );
    }

    #[test]
    fn division_by_zero_is_unknown_not_infinite() {
        let e = parse("pressure / 0 > 1", &types()).unwrap();
        let values: HashMap<&str, Value> = [("pressure", Value::Number(1.0))].into_iter().collect();
        assert_eq!(e.holds(&|m| values.get(m)), None);
    }
}
