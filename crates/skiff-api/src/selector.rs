//! Label and field selectors with the semantics of the Kubernetes API server: the
//! `labelSelector` and `fieldSelector` parameters of list, watch and deletecollection requests,
//! and the `LabelSelector` objects that workloads, services and policies embed. Parsing, error
//! messages, canonical string forms and matching follow k8s.io/apimachinery
//! (`pkg/labels/selector.go`, `pkg/fields/selector.go`, `LabelSelectorAsSelector`), and the
//! fields each built-in kind lets clients select on follow the field label conversion functions
//! and `ToSelectableFields` of Kubernetes v1.33, so that clients see the same 400 messages and the
//! same list results as against an upstream API server.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt::{self, Write as _};
use std::hash::BuildHasher;
use std::str::FromStr;

use k8s_openapi::apimachinery::pkg::apis::meta::v1 as metav1;
use serde_json::Value;

/// Why a selector was refused. The messages are upstream's, word for word where we know them,
/// because the API server returns them verbatim as the message of a 400 BadRequest.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SelectorError {
    /// A label selector string that does not parse, or a requirement (parsed or converted from
    /// a `LabelSelector` object) with an invalid key, operator or value.
    #[error("{0}")]
    InvalidLabelSelector(String),
    /// A field selector term without `=`, `==` or `!=`.
    #[error("invalid selector: '{selector}'; can't understand '{term}'")]
    InvalidFieldSelector {
        /// The whole selector as the client sent it.
        selector: String,
        /// The comma-separated term that has no operator.
        term: String,
    },
    /// A backslash in a field selector value that escapes something other than `\`, `,` or `=`,
    /// or that ends the value.
    #[error("invalid field selector: invalid escape sequence: {0}")]
    InvalidEscapeSequence(String),
    /// A `,` or `=` in a field selector value that is not escaped. Upstream prints the
    /// character as its code point number (a Go rune formatted with `%v`), and so do we.
    #[error("invalid field selector: unescaped character in value: {}", u32::from(*.0))]
    UnescapedCharacter(char),
    /// A field selector on a field the kind does not offer for selection.
    #[error("{}", .message.render(.field))]
    UnsupportedField {
        /// The field as the client spelled it.
        field: String,
        /// Which of upstream's wordings the kind uses.
        message: UnsupportedFieldMessage,
    },
}

/// Upstream words "this field is not selectable" differently per kind, depending on which
/// conversion function (or the default one) refuses the field; clients and tests match on the
/// text, so we keep each kind's wording.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UnsupportedFieldMessage {
    /// `field label not supported: <field>`, used by the kinds that register their own field
    /// label conversion (pods, nodes, events, secrets, services, ...).
    NotSupported,
    /// `field label "<field>" not supported for <Kind>`, used by batch/v1 Job.
    NotSupportedForKind(&'static str),
    /// `"<field>" is not a known field selector: only "metadata.name", "metadata.namespace"`,
    /// the default for kinds without a conversion function of their own.
    OnlyMetadata,
}

impl UnsupportedFieldMessage {
    /// The message for `field`.
    pub fn render(self, field: &str) -> String {
        match self {
            Self::NotSupported => format!("field label not supported: {field}"),
            Self::NotSupportedForKind(kind) => {
                format!("field label {} not supported for {kind}", go_quote(field))
            }
            Self::OnlyMetadata => format!(
                "{} is not a known field selector: only \"metadata.name\", \"metadata.namespace\"",
                go_quote(field)
            ),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Label selectors
// ---------------------------------------------------------------------------------------------

/// Where a label selector reads labels from.
pub trait LabelSource {
    /// The value of label `key`, if the label is set.
    fn get(&self, key: &str) -> Option<&str>;
}

impl LabelSource for BTreeMap<String, String> {
    fn get(&self, key: &str) -> Option<&str> {
        BTreeMap::get(self, key).map(String::as_str)
    }
}

impl<S: BuildHasher> LabelSource for HashMap<String, String, S> {
    fn get(&self, key: &str) -> Option<&str> {
        HashMap::get(self, key).map(String::as_str)
    }
}

/// A JSON object such as `metadata.labels`. Label values are strings in every valid object, so
/// a value of another type is treated as an absent label rather than guessed at.
impl LabelSource for serde_json::Map<String, Value> {
    fn get(&self, key: &str) -> Option<&str> {
        serde_json::Map::get(self, key).and_then(Value::as_str)
    }
}

/// The operator of one label selector requirement (upstream's `selection.Operator`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Operator {
    /// `key=value`.
    Equals,
    /// `key==value`, the same as `=` but kept apart so the string form round-trips.
    DoubleEquals,
    /// `key!=value`; matches objects without the label too.
    NotEquals,
    /// `key in (a,b)`.
    In,
    /// `key notin (a,b)`; matches objects without the label too.
    NotIn,
    /// `key`: the label is set, to anything.
    Exists,
    /// `!key`: the label is not set.
    DoesNotExist,
    /// `key>n`: the label is an integer greater than `n`.
    GreaterThan,
    /// `key<n`: the label is an integer less than `n`.
    LessThan,
}

impl Operator {
    /// Upstream's name for the operator, as `selection.Operator` spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Equals => "=",
            Self::DoubleEquals => "==",
            Self::NotEquals => "!=",
            Self::In => "in",
            Self::NotIn => "notin",
            Self::Exists => "exists",
            Self::DoesNotExist => "!",
            Self::GreaterThan => "gt",
            Self::LessThan => "lt",
        }
    }
}

/// One requirement of a label selector: a key, an operator and the values it relates them to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Requirement {
    key: String,
    operator: Operator,
    values: Vec<String>,
}

impl Requirement {
    /// Checks a requirement the way upstream's `labels.NewRequirement` does: the key must be a
    /// qualified name, `in`/`notin` need at least one value, the equality operators exactly
    /// one, `exists`/`!` none, `>`/`<` exactly one integer, and every value must be a valid
    /// label value. All problems are reported together, as upstream aggregates them.
    pub fn new(key: &str, operator: Operator, values: Vec<String>) -> Result<Self, SelectorError> {
        let mut errs = Vec::new();
        let key_errs = qualified_name_errors(key);
        if !key_errs.is_empty() {
            errs.push(invalid_value("key", &go_quote(key), &key_errs.join("; ")));
        }
        match operator {
            Operator::In | Operator::NotIn => {
                if values.is_empty() {
                    errs.push(invalid_value(
                        "values",
                        &go_string_slice(&values),
                        "for 'in', 'notin' operators, values set can't be empty",
                    ));
                }
            }
            Operator::Equals | Operator::DoubleEquals | Operator::NotEquals => {
                if values.len() != 1 {
                    errs.push(invalid_value(
                        "values",
                        &go_string_slice(&values),
                        "exact-match compatibility requires one single value",
                    ));
                }
            }
            Operator::Exists | Operator::DoesNotExist => {
                if !values.is_empty() {
                    errs.push(invalid_value(
                        "values",
                        &go_string_slice(&values),
                        "values set must be empty for exists and does not exist",
                    ));
                }
            }
            Operator::GreaterThan | Operator::LessThan => {
                if values.len() != 1 {
                    errs.push(invalid_value(
                        "values",
                        &go_string_slice(&values),
                        "for 'Gt', 'Lt' operators, exactly one value is required",
                    ));
                }
                for (i, value) in values.iter().enumerate() {
                    if value.parse::<i64>().is_err() {
                        errs.push(invalid_value(
                            &format!("values[{i}]"),
                            &go_quote(value),
                            "for 'Gt', 'Lt' operators, the value must be an integer",
                        ));
                    }
                }
            }
        }
        for (i, value) in values.iter().enumerate() {
            let value_errs = label_value_errors(value);
            if !value_errs.is_empty() {
                errs.push(invalid_value(
                    &format!("values[{i}][{key}]"),
                    &go_quote(value),
                    &value_errs.join("; "),
                ));
            }
        }
        match aggregate(errs) {
            Some(message) => Err(SelectorError::InvalidLabelSelector(message)),
            None => Ok(Self {
                key: key.to_string(),
                operator,
                values,
            }),
        }
    }

    /// The label key.
    pub fn key(&self) -> &str {
        &self.key
    }

    /// The operator.
    pub fn operator(&self) -> Operator {
        self.operator
    }

    /// The values, in the order they were given (sorted and de-duplicated when parsed).
    pub fn values(&self) -> &[String] {
        &self.values
    }

    fn has_value(&self, value: &str) -> bool {
        self.values.iter().any(|v| v == value)
    }

    /// Whether `labels` satisfy this requirement. As upstream, `!=` and `notin` hold for an
    /// object that lacks the label, while `=`, `in`, `>` and `<` need the label to be set.
    pub fn matches(&self, labels: &dyn LabelSource) -> bool {
        let value = labels.get(&self.key);
        match self.operator {
            Operator::In | Operator::Equals | Operator::DoubleEquals => {
                value.is_some_and(|v| self.has_value(v))
            }
            Operator::NotIn | Operator::NotEquals => value.is_none_or(|v| !self.has_value(v)),
            Operator::Exists => value.is_some(),
            Operator::DoesNotExist => value.is_none(),
            Operator::GreaterThan | Operator::LessThan => {
                // A label that is not an integer never satisfies an inequality; upstream only
                // logs such a label, it does not fail the request.
                let Some(actual) = value.and_then(|v| v.parse::<i64>().ok()) else {
                    return false;
                };
                let [bound] = self.values.as_slice() else {
                    return false;
                };
                let Ok(bound) = bound.parse::<i64>() else {
                    return false;
                };
                if self.operator == Operator::GreaterThan {
                    actual > bound
                } else {
                    actual < bound
                }
            }
        }
    }
}

/// The canonical form upstream's `Requirement.String` produces: values sorted, set operators
/// spaced (`key in (a,b)`), the rest written tightly (`key!=a`, `!key`).
impl fmt::Display for Requirement {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.operator == Operator::DoesNotExist {
            f.write_str("!")?;
        }
        f.write_str(&self.key)?;
        let (op, set) = match self.operator {
            Operator::Equals => ("=", false),
            Operator::DoubleEquals => ("==", false),
            Operator::NotEquals => ("!=", false),
            Operator::In => (" in ", true),
            Operator::NotIn => (" notin ", true),
            Operator::GreaterThan => (">", false),
            Operator::LessThan => ("<", false),
            Operator::Exists | Operator::DoesNotExist => return Ok(()),
        };
        f.write_str(op)?;
        if set {
            f.write_str("(")?;
        }
        let mut values: Vec<&str> = self.values.iter().map(String::as_str).collect();
        values.sort_unstable();
        f.write_str(&values.join(","))?;
        if set {
            f.write_str(")")?;
        }
        Ok(())
    }
}

/// A parsed label selector: the conjunction of its requirements, sorted by key. The default
/// value has no requirements and matches everything.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LabelSelector {
    requirements: Vec<Requirement>,
}

impl LabelSelector {
    /// The selector that matches every object.
    pub fn everything() -> Self {
        Self::default()
    }

    /// Parses upstream's label selector syntax, e.g. `app=web,tier in (a,b),!canary,env`.
    /// The empty string (or only whitespace) selects everything.
    pub fn parse(s: &str) -> Result<Self, SelectorError> {
        let mut parser = Parser {
            items: lex(s),
            pos: 0,
        };
        let mut requirements = parser
            .parse()
            .map_err(SelectorError::InvalidLabelSelector)?;
        // Upstream sorts by key so that equal selectors print and compare equal; a stable
        // sort keeps requirements on the same key in the order the client wrote them.
        requirements.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(Self { requirements })
    }

    /// Converts a `LabelSelector` object as upstream's `LabelSelectorAsSelector` does:
    /// `matchLabels` become `=` requirements and `matchExpressions` use the operators `In`,
    /// `NotIn`, `Exists` and `DoesNotExist`. A selector with neither selects everything.
    ///
    /// Upstream treats an absent (nil) selector as selecting nothing; callers holding an
    /// `Option<LabelSelector>` have to make that distinction themselves.
    pub fn from_k8s(sel: &metav1::LabelSelector) -> Result<Self, SelectorError> {
        let mut requirements = Vec::new();
        for (key, value) in sel.match_labels.iter().flatten() {
            requirements.push(Requirement::new(
                key,
                Operator::Equals,
                vec![value.clone()],
            )?);
        }
        for expr in sel.match_expressions.iter().flatten() {
            let operator = match expr.operator.as_str() {
                "In" => Operator::In,
                "NotIn" => Operator::NotIn,
                "Exists" => Operator::Exists,
                "DoesNotExist" => Operator::DoesNotExist,
                other => {
                    return Err(SelectorError::InvalidLabelSelector(format!(
                        "{} is not a valid pod selector operator",
                        go_quote(other)
                    )))
                }
            };
            let values = expr.values.clone().unwrap_or_default();
            requirements.push(Requirement::new(&expr.key, operator, values)?);
        }
        requirements.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(Self { requirements })
    }

    /// Whether the selector has no requirements, i.e. matches everything.
    pub fn is_empty(&self) -> bool {
        self.requirements.is_empty()
    }

    /// The requirements, sorted by key.
    pub fn requirements(&self) -> &[Requirement] {
        &self.requirements
    }

    /// Whether every requirement holds for `labels`.
    pub fn matches(&self, labels: &dyn LabelSource) -> bool {
        self.requirements.iter().all(|r| r.matches(labels))
    }

    /// Whether the selector matches the `metadata.labels` of a JSON object; an object without
    /// labels is matched as having none.
    pub fn matches_object(&self, obj: &Value) -> bool {
        match obj.pointer("/metadata/labels").and_then(Value::as_object) {
            Some(labels) => self.matches(labels),
            None => self.matches(&serde_json::Map::new()),
        }
    }

    /// The single value the selector requires `label` to have, if the first requirement on
    /// that key is `=`, `==` or a one-value `in` (upstream's `RequiresExactMatch`).
    pub fn requires_exact_match(&self, label: &str) -> Option<&str> {
        let r = self.requirements.iter().find(|r| r.key == label)?;
        match (r.operator, r.values.as_slice()) {
            (Operator::Equals | Operator::DoubleEquals | Operator::In, [value]) => Some(value),
            _ => None,
        }
    }
}

/// Upstream's canonical string form: the requirements joined by `,`, empty for everything.
impl fmt::Display for LabelSelector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, r) in self.requirements.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            write!(f, "{r}")?;
        }
        Ok(())
    }
}

impl FromStr for LabelSelector {
    type Err = SelectorError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

// The lexer and parser below mirror upstream's token by token, because clients see the parse
// errors verbatim and upstream's exact choices (which token is reported, `()` meaning the empty
// value, `in`/`notin` being plain words inside values) are part of the behaviour.

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Token {
    EndOfString,
    ClosedPar,
    Comma,
    DoesNotExist,
    DoubleEquals,
    Equals,
    GreaterThan,
    Identifier,
    In,
    LessThan,
    NotEquals,
    NotIn,
    OpenPar,
}

fn symbol_token(s: &str) -> Option<Token> {
    Some(match s {
        ")" => Token::ClosedPar,
        "," => Token::Comma,
        "!" => Token::DoesNotExist,
        "==" => Token::DoubleEquals,
        "=" => Token::Equals,
        ">" => Token::GreaterThan,
        "<" => Token::LessThan,
        "!=" => Token::NotEquals,
        "(" => Token::OpenPar,
        _ => return None,
    })
}

fn is_whitespace(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\r' | b'\n')
}

fn is_special(b: u8) -> bool {
    matches!(b, b'=' | b'!' | b'(' | b')' | b',' | b'>' | b'<')
}

/// Splits a label selector into tokens, ending with `EndOfString`. Identifiers run until
/// whitespace or one of `=!(),<>`; runs of those symbols are cut into the longest operator
/// that still forms a token, so `x===a` lexes as `x`, `==`, `=`, `a` as upstream.
///
/// Upstream's lexer also treats a NUL byte as the end of the input; here it is an ordinary
/// character, which then fails key or value validation instead of silently cutting the
/// selector short.
fn lex(input: &str) -> Vec<(Token, &str)> {
    let bytes = input.as_bytes();
    let mut items = Vec::new();
    let mut pos = 0;
    loop {
        while bytes.get(pos).is_some_and(|&b| is_whitespace(b)) {
            pos += 1;
        }
        let Some(&first) = bytes.get(pos) else {
            items.push((Token::EndOfString, ""));
            return items;
        };
        let start = pos;
        if is_special(first) {
            let mut best = None;
            let mut end = start;
            while bytes.get(end).is_some_and(|&b| is_special(b)) {
                match symbol_token(&input[start..end + 1]) {
                    Some(token) => {
                        best = Some(token);
                        end += 1;
                    }
                    None => break,
                }
            }
            // Every special character is a token on its own, so `best` is always set; the
            // fallback only keeps the lexer total.
            let token = best.unwrap_or(Token::Identifier);
            let end = end.max(start + 1);
            items.push((token, &input[start..end]));
            pos = end;
        } else {
            let mut end = start;
            while bytes
                .get(end)
                .is_some_and(|&b| !is_special(b) && !is_whitespace(b))
            {
                end += 1;
            }
            let literal = &input[start..end];
            let token = match literal {
                "in" => Token::In,
                "notin" => Token::NotIn,
                _ => Token::Identifier,
            };
            items.push((token, literal));
            pos = end;
        }
    }
}

/// Whether `in` and `notin` are keywords (after a key) or plain words (keys and values).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Context {
    KeyAndOperator,
    Values,
}

struct Parser<'a> {
    items: Vec<(Token, &'a str)>,
    pos: usize,
}

/// The operators upstream lists when it expected one and found something else.
const BINARY_OPERATORS: &str = "in, notin, =, ==, !=, gt, lt";

impl<'a> Parser<'a> {
    fn lookahead(&self, context: Context) -> (Token, &'a str) {
        let (token, literal) = self
            .items
            .get(self.pos)
            .copied()
            .unwrap_or((Token::EndOfString, ""));
        match (context, token) {
            (Context::Values, Token::In | Token::NotIn) => (Token::Identifier, literal),
            _ => (token, literal),
        }
    }

    fn consume(&mut self, context: Context) -> (Token, &'a str) {
        let item = self.lookahead(context);
        self.pos += 1;
        item
    }

    fn parse(&mut self) -> Result<Vec<Requirement>, String> {
        let mut requirements = Vec::new();
        loop {
            let (token, literal) = self.lookahead(Context::Values);
            match token {
                Token::Identifier | Token::DoesNotExist => {
                    let r = self
                        .parse_requirement()
                        .map_err(|e| format!("unable to parse requirement: {e}"))?;
                    requirements.push(r);
                    let (token, literal) = self.consume(Context::Values);
                    match token {
                        Token::EndOfString => return Ok(requirements),
                        Token::Comma => {
                            let (next, next_literal) = self.lookahead(Context::Values);
                            if next != Token::Identifier && next != Token::DoesNotExist {
                                return Err(format!(
                                    "found '{next_literal}', expected: identifier after ','"
                                ));
                            }
                        }
                        _ => {
                            return Err(format!(
                                "found '{literal}', expected: ',' or 'end of string'"
                            ))
                        }
                    }
                }
                Token::EndOfString => return Ok(requirements),
                _ => {
                    return Err(format!(
                        "found '{literal}', expected: !, identifier, or 'end of string'"
                    ))
                }
            }
        }
    }

    fn parse_requirement(&mut self) -> Result<Requirement, String> {
        let (key, operator) = self.parse_key_and_infer_operator()?;
        if let Some(op @ (Operator::Exists | Operator::DoesNotExist)) = operator {
            return Requirement::new(key, op, Vec::new()).map_err(|e| e.to_string());
        }
        let operator = self.parse_operator()?;
        let values = match operator {
            Operator::In | Operator::NotIn => self.parse_values()?,
            _ => self.parse_exact_value()?,
        };
        // Upstream collects values in a string set, so they come out sorted and de-duplicated.
        Requirement::new(key, operator, values.into_iter().collect()).map_err(|e| e.to_string())
    }

    fn parse_key_and_infer_operator(&mut self) -> Result<(&'a str, Option<Operator>), String> {
        let mut operator = None;
        let (mut token, mut literal) = self.consume(Context::Values);
        if token == Token::DoesNotExist {
            operator = Some(Operator::DoesNotExist);
            (token, literal) = self.consume(Context::Values);
        }
        if token != Token::Identifier {
            return Err(format!("found '{literal}', expected: identifier"));
        }
        let key_errs = qualified_name_errors(literal);
        if !key_errs.is_empty() {
            // Upstream validates the key against a nil field path, which prints as `<nil>`.
            return Err(invalid_value(
                "<nil>",
                &go_quote(literal),
                &key_errs.join("; "),
            ));
        }
        let (next, _) = self.lookahead(Context::Values);
        if (next == Token::EndOfString || next == Token::Comma) && operator.is_none() {
            operator = Some(Operator::Exists);
        }
        Ok((literal, operator))
    }

    fn parse_operator(&mut self) -> Result<Operator, String> {
        let (token, literal) = self.consume(Context::KeyAndOperator);
        Ok(match token {
            Token::In => Operator::In,
            Token::Equals => Operator::Equals,
            Token::DoubleEquals => Operator::DoubleEquals,
            Token::GreaterThan => Operator::GreaterThan,
            Token::LessThan => Operator::LessThan,
            Token::NotIn => Operator::NotIn,
            Token::NotEquals => Operator::NotEquals,
            _ => return Err(format!("found '{literal}', expected: {BINARY_OPERATORS}")),
        })
    }

    fn parse_values(&mut self) -> Result<BTreeSet<String>, String> {
        let (token, literal) = self.consume(Context::Values);
        if token != Token::OpenPar {
            // Upstream's message lacks the comma here; kept for fidelity.
            return Err(format!("found '{literal}' expected: '('"));
        }
        let (token, literal) = self.lookahead(Context::Values);
        match token {
            Token::Identifier | Token::Comma => {
                let set = self.parse_identifiers_list()?;
                let (token, _) = self.consume(Context::Values);
                if token != Token::ClosedPar {
                    return Err(format!("found '{literal}', expected: ')'"));
                }
                Ok(set)
            }
            Token::ClosedPar => {
                // `()` is the set holding only the empty value, as upstream.
                self.consume(Context::Values);
                Ok(BTreeSet::from([String::new()]))
            }
            _ => Err(format!(
                "found '{literal}', expected: ',', ')' or identifier"
            )),
        }
    }

    fn parse_identifiers_list(&mut self) -> Result<BTreeSet<String>, String> {
        let mut set = BTreeSet::new();
        loop {
            let (token, literal) = self.consume(Context::Values);
            match token {
                Token::Identifier => {
                    set.insert(literal.to_string());
                    let (next, next_literal) = self.lookahead(Context::Values);
                    match next {
                        Token::Comma => continue,
                        Token::ClosedPar => return Ok(set),
                        _ => return Err(format!("found '{next_literal}', expected: ',' or ')'")),
                    }
                }
                Token::Comma => {
                    // A comma with nothing before it, before `)` or before another comma
                    // stands for the empty value.
                    if set.is_empty() {
                        set.insert(String::new());
                    }
                    let (next, _) = self.lookahead(Context::Values);
                    if next == Token::ClosedPar {
                        set.insert(String::new());
                        return Ok(set);
                    }
                    if next == Token::Comma {
                        set.insert(String::new());
                    }
                }
                _ => return Err(format!("found '{literal}', expected: ',', or identifier")),
            }
        }
    }

    fn parse_exact_value(&mut self) -> Result<BTreeSet<String>, String> {
        let (token, _) = self.lookahead(Context::Values);
        if token == Token::EndOfString || token == Token::Comma {
            return Ok(BTreeSet::from([String::new()]));
        }
        let (token, literal) = self.consume(Context::Values);
        if token == Token::Identifier {
            return Ok(BTreeSet::from([literal.to_string()]));
        }
        Err(format!("found '{literal}', expected: identifier"))
    }
}

// ---------------------------------------------------------------------------------------------
// Validation messages (k8s.io/apimachinery/pkg/util/validation, v1.33 wording)
// ---------------------------------------------------------------------------------------------

const QUALIFIED_NAME_FMT: &str = "([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]";
const QUALIFIED_NAME_ERR: &str = "must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character";
const QUALIFIED_NAME_MAX_LEN: usize = 63;
const LABEL_VALUE_FMT: &str = "(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?";
const LABEL_VALUE_ERR: &str = "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character";
const LABEL_VALUE_MAX_LEN: usize = 63;
const DNS1123_SUBDOMAIN_FMT: &str =
    "[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*";
const DNS1123_SUBDOMAIN_ERR: &str = "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character";
const DNS1123_SUBDOMAIN_MAX_LEN: usize = 253;

/// Upstream's `RegexError`, including its doubled spaces between examples.
fn regex_error(msg: &str, format: &str, examples: &[&str]) -> String {
    let mut out = format!("{msg} (e.g. ");
    for (i, example) in examples.iter().enumerate() {
        if i > 0 {
            out.push_str(" or ");
        }
        out.push('\'');
        out.push_str(example);
        out.push_str("', ");
    }
    out.push_str("regex used for validation is '");
    out.push_str(format);
    out.push_str("')");
    out
}

fn max_len_error(len: usize) -> String {
    format!("must be no more than {len} characters")
}

/// `[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?`, the name part of a qualified name and every
/// non-empty label value.
fn is_qualified_name_part(s: &str) -> bool {
    let b = s.as_bytes();
    match (b.first(), b.last()) {
        (Some(first), Some(last)) => {
            first.is_ascii_alphanumeric()
                && last.is_ascii_alphanumeric()
                && b.iter()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_' | b'.'))
        }
        _ => false,
    }
}

fn is_dns1123_label(s: &str) -> bool {
    let b = s.as_bytes();
    let edge = |c: &u8| c.is_ascii_lowercase() || c.is_ascii_digit();
    match (b.first(), b.last()) {
        (Some(first), Some(last)) => {
            edge(first) && edge(last) && b.iter().all(|c| edge(c) || *c == b'-')
        }
        _ => false,
    }
}

fn is_dns1123_subdomain(s: &str) -> bool {
    s.split('.').all(is_dns1123_label)
}

/// Upstream's `IsQualifiedName`: the problems with a label key, empty when it is valid.
fn qualified_name_errors(value: &str) -> Vec<String> {
    let mut errs = Vec::new();
    let parts: Vec<&str> = value.split('/').collect();
    let name = match parts.as_slice() {
        [name] => *name,
        [prefix, name] => {
            if prefix.is_empty() {
                errs.push("prefix part must be non-empty".to_string());
            } else {
                if prefix.len() > DNS1123_SUBDOMAIN_MAX_LEN {
                    errs.push(format!(
                        "prefix part {}",
                        max_len_error(DNS1123_SUBDOMAIN_MAX_LEN)
                    ));
                }
                if !is_dns1123_subdomain(prefix) {
                    errs.push(format!(
                        "prefix part {}",
                        regex_error(
                            DNS1123_SUBDOMAIN_ERR,
                            DNS1123_SUBDOMAIN_FMT,
                            &["example.com"]
                        )
                    ));
                }
            }
            *name
        }
        _ => {
            return vec![format!(
                "a qualified name {} with an optional DNS subdomain prefix and '/' (e.g. 'example.com/MyName')",
                regex_error(
                    QUALIFIED_NAME_ERR,
                    QUALIFIED_NAME_FMT,
                    &["MyName", "my.name", "123-abc"]
                )
            )]
        }
    };
    if name.is_empty() {
        errs.push("name part must be non-empty".to_string());
    } else if name.len() > QUALIFIED_NAME_MAX_LEN {
        errs.push(format!(
            "name part {}",
            max_len_error(QUALIFIED_NAME_MAX_LEN)
        ));
    }
    if !is_qualified_name_part(name) {
        errs.push(format!(
            "name part {}",
            regex_error(
                QUALIFIED_NAME_ERR,
                QUALIFIED_NAME_FMT,
                &["MyName", "my.name", "123-abc"]
            )
        ));
    }
    errs
}

/// Upstream's `IsValidLabelValue`: the problems with a label value, empty when it is valid.
fn label_value_errors(value: &str) -> Vec<String> {
    let mut errs = Vec::new();
    if value.len() > LABEL_VALUE_MAX_LEN {
        errs.push(max_len_error(LABEL_VALUE_MAX_LEN));
    }
    if !value.is_empty() && !is_qualified_name_part(value) {
        errs.push(regex_error(
            LABEL_VALUE_ERR,
            LABEL_VALUE_FMT,
            &["MyValue", "my_value", "12345"],
        ));
    }
    errs
}

/// One `field.Invalid` error as upstream prints it: `<path>: Invalid value: <value>: <detail>`.
fn invalid_value(path: &str, value: &str, detail: &str) -> String {
    format!("{path}: Invalid value: {value}: {detail}")
}

/// Upstream's error aggregate: nothing, the only error, or `[a, b]` with duplicates dropped.
fn aggregate(errs: Vec<String>) -> Option<String> {
    let mut unique: Vec<String> = Vec::new();
    for e in errs {
        if !unique.contains(&e) {
            unique.push(e);
        }
    }
    match unique.len() {
        0 => None,
        1 => unique.pop(),
        _ => Some(format!("[{}]", unique.join(", "))),
    }
}

/// Go's `%q` for a string. Non-printable characters are approximated with Rust's notion of
/// control characters, which covers everything a selector realistically contains.
fn go_quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\u{7}' => out.push_str("\\a"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{b}' => out.push_str("\\v"),
            c if u32::from(c) < 0x20 || c == '\u{7f}' => {
                let _ = write!(out, "\\x{:02x}", u32::from(c));
            }
            c if c.is_control() => {
                let _ = write!(out, "\\u{:04x}", u32::from(c));
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// Go's `%#v` for a `[]string`, as upstream prints a rejected value list. Upstream copies the
/// values into a nil slice first, so an empty list prints as nil.
fn go_string_slice(values: &[String]) -> String {
    if values.is_empty() {
        return "[]string(nil)".to_string();
    }
    let quoted: Vec<String> = values.iter().map(|v| go_quote(v)).collect();
    format!("[]string{{{}}}", quoted.join(", "))
}

// ---------------------------------------------------------------------------------------------
// Field selectors
// ---------------------------------------------------------------------------------------------

/// The operator of a field selector term. `==` parses to [`FieldOperator::Equals`], as
/// upstream does; it prints as `=`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FieldOperator {
    /// `field=value` or `field==value`.
    Equals,
    /// `field!=value`.
    NotEquals,
}

/// One term of a field selector, with its value unescaped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldRequirement {
    /// The field, e.g. `spec.nodeName`, exactly as the client wrote it (no whitespace trimming,
    /// as upstream).
    pub field: String,
    /// `=` or `!=`.
    pub op: FieldOperator,
    /// The value, with `\,`, `\=` and `\\` unescaped.
    pub value: String,
}

impl FieldRequirement {
    /// Whether `actual` (absent meaning the empty string) satisfies the term.
    fn holds(&self, actual: Option<&str>) -> bool {
        let actual = actual.unwrap_or("");
        match self.op {
            FieldOperator::Equals => actual == self.value,
            FieldOperator::NotEquals => actual != self.value,
        }
    }
}

impl fmt::Display for FieldRequirement {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let op = match self.op {
            FieldOperator::Equals => "=",
            FieldOperator::NotEquals => "!=",
        };
        write!(f, "{}{op}{}", self.field, escape_value(&self.value))
    }
}

/// A parsed field selector: the conjunction of its terms, in upstream's order (sorted by the
/// raw term text). The default value has no terms and matches everything.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FieldSelector {
    requirements: Vec<FieldRequirement>,
}

impl FieldSelector {
    /// The selector that matches every object.
    pub fn everything() -> Self {
        Self::default()
    }

    /// Parses upstream's field selector syntax: comma-separated `field=value`,
    /// `field==value` and `field!=value` terms, where values escape `\`, `,` and `=` with a
    /// backslash. The empty string selects everything.
    pub fn parse(s: &str) -> Result<Self, SelectorError> {
        let mut terms = split_terms(s);
        // Upstream sorts the raw terms before parsing them, which decides both the order of
        // the requirements and which bad term an error names.
        terms.sort_unstable();
        let mut requirements = Vec::new();
        for term in terms {
            if term.is_empty() {
                continue;
            }
            let Some((field, op, raw_value)) = split_term(term) else {
                return Err(SelectorError::InvalidFieldSelector {
                    selector: s.to_string(),
                    term: term.to_string(),
                });
            };
            let value = unescape_value(raw_value)?;
            // Upstream's parser drops a term whose field and value are both empty (`=`, `==`,
            // `!=`) when it transforms the parsed selector, so such a term selects everything.
            if field.is_empty() && value.is_empty() {
                continue;
            }
            requirements.push(FieldRequirement {
                field: field.to_string(),
                op,
                value,
            });
        }
        Ok(Self { requirements })
    }

    /// Whether the selector has no terms, i.e. matches everything.
    pub fn is_empty(&self) -> bool {
        self.requirements.is_empty()
    }

    /// The terms, in upstream's order.
    pub fn requirements(&self) -> &[FieldRequirement] {
        &self.requirements
    }

    /// Whether every term holds, reading field values through `get`; a field `get` does not
    /// know compares as the empty string, as with upstream's field sets.
    pub fn matches(&self, get: &dyn Fn(&str) -> Option<String>) -> bool {
        self.requirements
            .iter()
            .all(|r| r.holds(get(&r.field).as_deref()))
    }

    /// The name the selector pins, when it consists of exactly one `metadata.name=<name>` (or
    /// `==`) term. The API server uses it to read or watch one key instead of a whole list;
    /// because nothing else is required, the narrowed result needs no further field filtering.
    pub fn single_name(&self) -> Option<&str> {
        match self.requirements.as_slice() {
            [r] if r.field == "metadata.name" && r.op == FieldOperator::Equals => Some(&r.value),
            _ => None,
        }
    }

    /// The value the first `=` term on `field` requires, even when other terms exist
    /// (upstream's `RequiresExactMatch`).
    pub fn requires_exact_match(&self, field: &str) -> Option<&str> {
        self.requirements
            .iter()
            .find(|r| r.field == field && r.op == FieldOperator::Equals)
            .map(|r| r.value.as_str())
    }

    /// Whether the selector matches `obj`, an object of `resource` in `group`. Every field is
    /// checked first, so an unsupported field is an error even when another term already
    /// fails, as upstream refuses such a selector before it looks at any object.
    pub fn matches_object(
        &self,
        group: &str,
        resource: &str,
        obj: &Value,
    ) -> Result<bool, SelectorError> {
        check_fields(group, resource, self)?;
        for r in &self.requirements {
            let actual = field_value(group, resource, obj, &r.field)?;
            if !r.holds(actual.as_deref()) {
                return Ok(false);
            }
        }
        Ok(true)
    }
}

/// Upstream's canonical string form: the terms joined by `,`, values escaped.
impl fmt::Display for FieldSelector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, r) in self.requirements.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            write!(f, "{r}")?;
        }
        Ok(())
    }
}

impl FromStr for FieldSelector {
    type Err = SelectorError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

/// Splits at commas that are not escaped; the escapes stay in the terms.
fn split_terms(s: &str) -> Vec<&str> {
    if s.is_empty() {
        return Vec::new();
    }
    let mut terms = Vec::new();
    let mut start = 0;
    let mut in_slash = false;
    for (i, c) in s.char_indices() {
        if in_slash {
            in_slash = false;
        } else if c == '\\' {
            in_slash = true;
        } else if c == ',' {
            terms.push(&s[start..i]);
            start = i + 1;
        }
    }
    terms.push(&s[start..]);
    terms
}

/// Splits a term at the first operator. The field cannot escape anything, so the first `!=`,
/// `==` or `=` wins, `!=` and `==` before `=` at the same position.
fn split_term(term: &str) -> Option<(&str, FieldOperator, &str)> {
    for (i, _) in term.char_indices() {
        let rest = &term[i..];
        for (op, operator) in [
            ("!=", FieldOperator::NotEquals),
            ("==", FieldOperator::Equals),
            ("=", FieldOperator::Equals),
        ] {
            if let Some(value) = rest.strip_prefix(op) {
                return Some((&term[..i], operator, value));
            }
        }
    }
    None
}

fn escape_value(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if matches!(c, '\\' | ',' | '=') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

fn unescape_value(s: &str) -> Result<String, SelectorError> {
    let mut out = String::with_capacity(s.len());
    let mut in_slash = false;
    for c in s.chars() {
        if in_slash {
            if !matches!(c, '\\' | ',' | '=') {
                return Err(SelectorError::InvalidEscapeSequence(format!("\\{c}")));
            }
            out.push(c);
            in_slash = false;
            continue;
        }
        match c {
            '\\' => in_slash = true,
            ',' | '=' => return Err(SelectorError::UnescapedCharacter(c)),
            c => out.push(c),
        }
    }
    if in_slash {
        return Err(SelectorError::InvalidEscapeSequence("\\".to_string()));
    }
    Ok(out)
}

// ---------------------------------------------------------------------------------------------
// Selectable fields per kind
// ---------------------------------------------------------------------------------------------

/// How a selectable field's value is read from the stored (versioned JSON) object. Upstream
/// builds its field set from the internal object, where absent fields are zero values, so an
/// absent string reads as "", an absent integer as "0" and an absent boolean as "false".
#[derive(Debug, Clone, Copy)]
enum Getter {
    /// A string at this path.
    Str(&'static [&'static str]),
    /// A boolean at this path, "true" or "false".
    Bool(&'static [&'static str]),
    /// An integer at this path, in decimal.
    Int(&'static [&'static str]),
    /// A pod's primary IP: `status.podIP` when set, else the first of `status.podIPs`, which is
    /// how the v1 to internal conversion fills the internal `PodIPs[0]` upstream reads.
    PodIp,
    /// A core/v1 event's `source.component`, falling back to `reportingComponent`.
    CoreEventSource,
    /// An events.k8s.io/v1 event's `deprecatedSource.component`, falling back to
    /// `reportingController`.
    EventsV1Source,
    /// Accepted by the kind's field label conversion but absent from its selectable field
    /// set, so upstream compares it as the empty string (pods' `status.podIPs`).
    Unset,
}

type FieldTable = &'static [(&'static str, Getter)];

const NAME: (&str, Getter) = ("metadata.name", Getter::Str(&["metadata", "name"]));
const NAMESPACE: (&str, Getter) = (
    "metadata.namespace",
    Getter::Str(&["metadata", "namespace"]),
);

/// Kinds without a conversion function of their own accept exactly these.
const DEFAULT_FIELDS: FieldTable = &[NAME, NAMESPACE];

const POD_FIELDS: FieldTable = &[
    NAME,
    NAMESPACE,
    ("spec.nodeName", Getter::Str(&["spec", "nodeName"])),
    (
        "spec.restartPolicy",
        Getter::Str(&["spec", "restartPolicy"]),
    ),
    (
        "spec.schedulerName",
        Getter::Str(&["spec", "schedulerName"]),
    ),
    (
        "spec.serviceAccountName",
        Getter::Str(&["spec", "serviceAccountName"]),
    ),
    ("spec.hostNetwork", Getter::Bool(&["spec", "hostNetwork"])),
    ("status.phase", Getter::Str(&["status", "phase"])),
    ("status.podIP", Getter::PodIp),
    ("status.podIPs", Getter::Unset),
    (
        "status.nominatedNodeName",
        Getter::Str(&["status", "nominatedNodeName"]),
    ),
    // Old v1 clients send `spec.host`; upstream converts it to `spec.nodeName`.
    ("spec.host", Getter::Str(&["spec", "nodeName"])),
];

// Nodes and namespaces are cluster-scoped and their conversion functions do not accept
// `metadata.namespace`.
const NODE_FIELDS: FieldTable = &[
    NAME,
    (
        "spec.unschedulable",
        Getter::Bool(&["spec", "unschedulable"]),
    ),
];

const NAMESPACE_FIELDS: FieldTable = &[NAME, ("status.phase", Getter::Str(&["status", "phase"]))];

const REPLICATION_CONTROLLER_FIELDS: FieldTable = &[
    NAME,
    NAMESPACE,
    ("status.replicas", Getter::Int(&["status", "replicas"])),
];

const SECRET_FIELDS: FieldTable = &[NAME, NAMESPACE, ("type", Getter::Str(&["type"]))];

const SERVICE_FIELDS: FieldTable = &[
    NAME,
    NAMESPACE,
    ("spec.clusterIP", Getter::Str(&["spec", "clusterIP"])),
    ("spec.type", Getter::Str(&["spec", "type"])),
];

const CORE_EVENT_FIELDS: FieldTable = &[
    NAME,
    NAMESPACE,
    (
        "involvedObject.kind",
        Getter::Str(&["involvedObject", "kind"]),
    ),
    (
        "involvedObject.namespace",
        Getter::Str(&["involvedObject", "namespace"]),
    ),
    (
        "involvedObject.name",
        Getter::Str(&["involvedObject", "name"]),
    ),
    (
        "involvedObject.uid",
        Getter::Str(&["involvedObject", "uid"]),
    ),
    (
        "involvedObject.apiVersion",
        Getter::Str(&["involvedObject", "apiVersion"]),
    ),
    (
        "involvedObject.resourceVersion",
        Getter::Str(&["involvedObject", "resourceVersion"]),
    ),
    (
        "involvedObject.fieldPath",
        Getter::Str(&["involvedObject", "fieldPath"]),
    ),
    ("reason", Getter::Str(&["reason"])),
    ("reportingComponent", Getter::Str(&["reportingComponent"])),
    ("source", Getter::CoreEventSource),
    ("type", Getter::Str(&["type"])),
];

// events.k8s.io/v1 names the same selectable fields after its own schema (`regarding`,
// `reportingController`); upstream maps them onto the core field set, we read them directly.
const EVENTS_V1_FIELDS: FieldTable = &[
    NAME,
    NAMESPACE,
    ("regarding.kind", Getter::Str(&["regarding", "kind"])),
    (
        "regarding.namespace",
        Getter::Str(&["regarding", "namespace"]),
    ),
    ("regarding.name", Getter::Str(&["regarding", "name"])),
    ("regarding.uid", Getter::Str(&["regarding", "uid"])),
    (
        "regarding.apiVersion",
        Getter::Str(&["regarding", "apiVersion"]),
    ),
    (
        "regarding.resourceVersion",
        Getter::Str(&["regarding", "resourceVersion"]),
    ),
    (
        "regarding.fieldPath",
        Getter::Str(&["regarding", "fieldPath"]),
    ),
    ("reason", Getter::Str(&["reason"])),
    ("reportingController", Getter::Str(&["reportingController"])),
    ("source", Getter::EventsV1Source),
    ("type", Getter::Str(&["type"])),
];

// Upstream's Job field set calls the count `status.successful` while the object field is
// `status.succeeded`.
const JOB_FIELDS: FieldTable = &[
    NAME,
    NAMESPACE,
    ("status.successful", Getter::Int(&["status", "succeeded"])),
];

const SIGNER_NAME_FIELDS: FieldTable = &[
    NAME,
    ("spec.signerName", Getter::Str(&["spec", "signerName"])),
];

/// The fields `resource` in `group` offers for selection, and how it refuses others.
///
/// apps/v1 ReplicaSets are deliberately absent: their registry has a `status.replicas` field
/// and the documentation lists it, but apps/v1 registers no field label conversion, so an
/// upstream v1.33 API server refuses it (kubernetes/kubernetes#135136) and so do we. Unknown
/// kinds, custom resources included, get the metadata-only default.
fn kind_fields(group: &str, resource: &str) -> (FieldTable, UnsupportedFieldMessage) {
    use UnsupportedFieldMessage::{NotSupported, NotSupportedForKind, OnlyMetadata};
    match (group, resource) {
        ("", "pods") => (POD_FIELDS, NotSupported),
        ("", "nodes") => (NODE_FIELDS, NotSupported),
        ("", "namespaces") => (NAMESPACE_FIELDS, NotSupported),
        ("", "replicationcontrollers") => (REPLICATION_CONTROLLER_FIELDS, NotSupported),
        ("", "secrets") => (SECRET_FIELDS, NotSupported),
        ("", "services") => (SERVICE_FIELDS, NotSupported),
        ("", "events") => (CORE_EVENT_FIELDS, NotSupported),
        ("events.k8s.io", "events") => (EVENTS_V1_FIELDS, NotSupported),
        ("batch", "jobs") => (JOB_FIELDS, NotSupportedForKind("Job")),
        ("certificates.k8s.io", "certificatesigningrequests" | "clustertrustbundles") => {
            (SIGNER_NAME_FIELDS, NotSupported)
        }
        _ => (DEFAULT_FIELDS, OnlyMetadata),
    }
}

fn lookup_field(group: &str, resource: &str, field: &str) -> Result<Getter, SelectorError> {
    let (table, message) = kind_fields(group, resource);
    table
        .iter()
        .find(|(name, _)| *name == field)
        .map(|(_, source)| *source)
        .ok_or_else(|| SelectorError::UnsupportedField {
            field: field.to_string(),
            message,
        })
}

/// The fields `resource` in `group` accepts in a field selector, in a stable order.
pub fn selectable_fields(group: &str, resource: &str) -> Vec<&'static str> {
    kind_fields(group, resource)
        .0
        .iter()
        .map(|(name, _)| *name)
        .collect()
}

/// The value of `field` on `obj`, an object of `resource` (the plural) in `group` ("" for
/// core), as upstream's selectable field set has it: absent strings read as "", absent
/// integers as "0", absent booleans as "false". `Ok(None)` is a field the kind accepts but
/// upstream never fills in, which compares as the empty string. A field the kind does not
/// offer is an [`SelectorError::UnsupportedField`] with the kind's upstream message.
pub fn field_value(
    group: &str,
    resource: &str,
    obj: &Value,
    field: &str,
) -> Result<Option<String>, SelectorError> {
    Ok(match lookup_field(group, resource, field)? {
        Getter::Str(path) => Some(scalar(lookup(obj, path), "")),
        Getter::Bool(path) => Some(scalar(lookup(obj, path), "false")),
        Getter::Int(path) => Some(scalar(lookup(obj, path), "0")),
        Getter::PodIp => Some(first_non_empty(&[
            scalar(lookup(obj, &["status", "podIP"]), ""),
            scalar(obj.pointer("/status/podIPs/0/ip"), ""),
        ])),
        Getter::CoreEventSource => Some(first_non_empty(&[
            scalar(lookup(obj, &["source", "component"]), ""),
            scalar(lookup(obj, &["reportingComponent"]), ""),
        ])),
        Getter::EventsV1Source => Some(first_non_empty(&[
            scalar(lookup(obj, &["deprecatedSource", "component"]), ""),
            scalar(lookup(obj, &["reportingController"]), ""),
        ])),
        Getter::Unset => None,
    })
}

/// Checks every field of `selector` against what `resource` in `group` offers, reporting the
/// first unsupported one in the selector's order, so the API server can answer 400 before it
/// lists anything.
pub fn check_fields(
    group: &str,
    resource: &str,
    selector: &FieldSelector,
) -> Result<(), SelectorError> {
    for r in selector.requirements() {
        lookup_field(group, resource, &r.field)?;
    }
    Ok(())
}

fn lookup<'a>(obj: &'a Value, path: &[&str]) -> Option<&'a Value> {
    path.iter().try_fold(obj, |v, key| v.get(*key))
}

/// A JSON scalar as upstream's field set renders it; `zero` for null or absent. Objects and
/// arrays never sit at a selectable path in a valid object and also read as `zero`.
fn scalar(v: Option<&Value>, zero: &str) -> String {
    match v {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Bool(b)) => b.to_string(),
        Some(Value::Number(n)) => n.to_string(),
        _ => zero.to_string(),
    }
}

fn first_non_empty(candidates: &[String]) -> String {
    candidates
        .iter()
        .find(|s| !s.is_empty())
        .cloned()
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const NAME_PART_REGEX: &str = "name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')";
    const VALUE_REGEX: &str = "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyValue',  or 'my_value',  or '12345', regex used for validation is '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')";
    const PREFIX_REGEX: &str = "prefix part a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')";

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn label_err(s: &str) -> String {
        match LabelSelector::parse(s) {
            Ok(sel) => panic!("{s:?} parsed as {sel:?}"),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn label_selectors_parse_to_their_canonical_form() {
        let cases = [
            ("", ""),
            ("   \t\n", ""),
            ("x=a", "x=a"),
            ("x==a", "x==a"),
            ("x!=a", "x!=a"),
            ("x = a", "x=a"),
            ("x\t!=\na", "x!=a"),
            ("x in (a,b)", "x in (a,b)"),
            (" x in ( b , a , a ) ", "x in (a,b)"),
            ("x in(a)", "x in (a)"),
            ("x notin (a)", "x notin (a)"),
            ("x notin (b,a)", "x notin (a,b)"),
            ("x", "x"),
            ("!x", "!x"),
            ("! x", "!x"),
            ("x,y", "x,y"),
            ("y,x", "x,y"),
            ("b=1,!a,c in (z)", "!a,b=1,c in (z)"),
            ("x=", "x="),
            ("x=,y=b", "x=,y=b"),
            ("x==,y", "x==,y"),
            ("x in ()", "x in ()"),
            ("x notin ()", "x notin ()"),
            ("x in (,a)", "x in (,a)"),
            ("x in (a,)", "x in (,a)"),
            ("x in (a,,b)", "x in (,a,b)"),
            ("x in (,)", "x in ()"),
            ("x>1", "x>1"),
            ("x < 10", "x<10"),
            ("x>0,x<5", "x>0,x<5"),
            ("example.com/app=web", "example.com/app=web"),
            ("a.b-c.d/E.f-G_h=I.j-K_l", "a.b-c.d/E.f-G_h=I.j-K_l"),
            ("in=notin", "in=notin"),
            ("x in (in,notin)", "x in (in,notin)"),
            ("notin notin (in)", "notin notin (in)"),
            ("x=a,x!=b", "x=a,x!=b"),
            ("x in (a),y", "x in (a),y"),
            ("x in (a),!y", "x in (a),!y"),
            ("y,!x", "!x,y"),
        ];
        for (input, want) in cases {
            let sel = LabelSelector::parse(input)
                .unwrap_or_else(|e| panic!("{input:?} failed to parse: {e}"));
            assert_eq!(sel.to_string(), want, "{input:?}");
            assert_eq!(sel.is_empty(), want.is_empty(), "{input:?}");
        }
    }

    #[test]
    fn label_selectors_parse_into_requirements() {
        let sel = LabelSelector::parse("z in (b,a,b), !y, x>7, w").unwrap();
        let got: Vec<(&str, Operator, Vec<&str>)> = sel
            .requirements()
            .iter()
            .map(|r| {
                (
                    r.key(),
                    r.operator(),
                    r.values().iter().map(String::as_str).collect(),
                )
            })
            .collect();
        assert_eq!(
            got,
            vec![
                ("w", Operator::Exists, vec![]),
                ("x", Operator::GreaterThan, vec!["7"]),
                ("y", Operator::DoesNotExist, vec![]),
                ("z", Operator::In, vec!["a", "b"]),
            ]
        );
        let ops = [
            ("a=b", Operator::Equals),
            ("a==b", Operator::DoubleEquals),
            ("a!=b", Operator::NotEquals),
            ("a in (b)", Operator::In),
            ("a notin (b)", Operator::NotIn),
            ("a", Operator::Exists),
            ("!a", Operator::DoesNotExist),
            ("a>1", Operator::GreaterThan),
            ("a<1", Operator::LessThan),
        ];
        for (input, op) in ops {
            let sel = LabelSelector::parse(input).unwrap();
            assert_eq!(sel.requirements().len(), 1, "{input}");
            assert_eq!(sel.requirements()[0].operator(), op, "{input}");
        }
        assert_eq!(Operator::DoesNotExist.as_str(), "!");
        assert_eq!(Operator::GreaterThan.as_str(), "gt");
        let from_str: LabelSelector = "a=b".parse().unwrap();
        assert_eq!(from_str, LabelSelector::parse("a=b").unwrap());
        assert!(LabelSelector::everything().is_empty());
    }

    #[test]
    fn label_selector_syntax_errors_match_upstream() {
        let cases = [
            ("x=a b", "found 'b', expected: ',' or 'end of string'"),
            (
                "x in (a",
                "unable to parse requirement: found '', expected: ',' or ')'",
            ),
            (
                "x in (a,b",
                "unable to parse requirement: found '', expected: ',' or ')'",
            ),
            (
                "x in a)",
                "unable to parse requirement: found 'a' expected: '('",
            ),
            (
                "x in",
                "unable to parse requirement: found '' expected: '('",
            ),
            (
                "x notin",
                "unable to parse requirement: found '' expected: '('",
            ),
            (
                "x in (",
                "unable to parse requirement: found '', expected: ',', ')' or identifier",
            ),
            (
                "x in ((a)",
                "unable to parse requirement: found '(', expected: ',', ')' or identifier",
            ),
            ("x in (a))", "found ')', expected: ',' or 'end of string'"),
            (
                "x in (a,!)",
                "unable to parse requirement: found '!', expected: ',', or identifier",
            ),
            (
                "x in (a,",
                "unable to parse requirement: found '', expected: ',', or identifier",
            ),
            (
                "x in (a b)",
                "unable to parse requirement: found 'b', expected: ',' or ')'",
            ),
            (
                ",x",
                "found ',', expected: !, identifier, or 'end of string'",
            ),
            ("x,", "found '', expected: identifier after ','"),
            ("x,,y", "found ',', expected: identifier after ','"),
            ("x,(", "found '(', expected: identifier after ','"),
            (
                "x y",
                "unable to parse requirement: found 'y', expected: in, notin, =, ==, !=, gt, lt",
            ),
            (
                "x (a)",
                "unable to parse requirement: found '(', expected: in, notin, =, ==, !=, gt, lt",
            ),
            (
                "!",
                "unable to parse requirement: found '', expected: identifier",
            ),
            (
                "!!x",
                "unable to parse requirement: found '!', expected: identifier",
            ),
            (
                "!=a",
                "found '!=', expected: !, identifier, or 'end of string'",
            ),
            (
                "=a",
                "found '=', expected: !, identifier, or 'end of string'",
            ),
            (
                ")",
                "found ')', expected: !, identifier, or 'end of string'",
            ),
            (
                "x=(a)",
                "unable to parse requirement: found '(', expected: identifier",
            ),
            (
                "x===a",
                "unable to parse requirement: found '=', expected: identifier",
            ),
            (
                "x=!a",
                "unable to parse requirement: found '!', expected: identifier",
            ),
            ("!x=a", "found '=', expected: ',' or 'end of string'"),
            ("!x in (a)", "found 'in', expected: ',' or 'end of string'"),
        ];
        for (input, want) in cases {
            assert_eq!(label_err(input), want, "{input:?}");
        }
    }

    #[test]
    fn label_selector_validation_errors_match_upstream() {
        let long = "a".repeat(64);
        let long_value = "z".repeat(64);
        let long_prefix = format!("{}/x", "a".repeat(254));
        let cases: Vec<(String, String)> = vec![
            (
                "a$=b".into(),
                format!("unable to parse requirement: <nil>: Invalid value: \"a$\": {NAME_PART_REGEX}"),
            ),
            (
                "app:web".into(),
                format!(
                    "unable to parse requirement: <nil>: Invalid value: \"app:web\": {NAME_PART_REGEX}"
                ),
            ),
            (
                "-a".into(),
                format!("unable to parse requirement: <nil>: Invalid value: \"-a\": {NAME_PART_REGEX}"),
            ),
            (
                "a/b/c ?=? def".into(),
                "unable to parse requirement: <nil>: Invalid value: \"a/b/c\": a qualified name must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]') with an optional DNS subdomain prefix and '/' (e.g. 'example.com/MyName')".into(),
            ),
            (
                "/a".into(),
                "unable to parse requirement: <nil>: Invalid value: \"/a\": prefix part must be non-empty".into(),
            ),
            (
                "a/".into(),
                format!(
                    "unable to parse requirement: <nil>: Invalid value: \"a/\": name part must be non-empty; {NAME_PART_REGEX}"
                ),
            ),
            (
                "Example.com/a".into(),
                format!(
                    "unable to parse requirement: <nil>: Invalid value: \"Example.com/a\": {PREFIX_REGEX}"
                ),
            ),
            (
                long_prefix.clone(),
                format!(
                    "unable to parse requirement: <nil>: Invalid value: \"{long_prefix}\": prefix part must be no more than 253 characters"
                ),
            ),
            (
                long.clone(),
                format!(
                    "unable to parse requirement: <nil>: Invalid value: \"{long}\": name part must be no more than 63 characters"
                ),
            ),
            (
                "é=a".into(),
                format!("unable to parse requirement: <nil>: Invalid value: \"é\": {NAME_PART_REGEX}"),
            ),
            (
                "a\"b".into(),
                format!(
                    "unable to parse requirement: <nil>: Invalid value: \"a\\\"b\": {NAME_PART_REGEX}"
                ),
            ),
            (
                "a\u{0}b".into(),
                format!(
                    "unable to parse requirement: <nil>: Invalid value: \"a\\x00b\": {NAME_PART_REGEX}"
                ),
            ),
            (
                format!("x={long_value}"),
                format!(
                    "unable to parse requirement: values[0][x]: Invalid value: \"{long_value}\": must be no more than 63 characters"
                ),
            ),
            (
                "x=a$".into(),
                format!("unable to parse requirement: values[0][x]: Invalid value: \"a$\": {VALUE_REGEX}"),
            ),
            (
                "x in (a,b$)".into(),
                format!("unable to parse requirement: values[1][x]: Invalid value: \"b$\": {VALUE_REGEX}"),
            ),
            (
                "x notin (-a)".into(),
                format!("unable to parse requirement: values[0][x]: Invalid value: \"-a\": {VALUE_REGEX}"),
            ),
            (
                "x>a".into(),
                "unable to parse requirement: values[0]: Invalid value: \"a\": for 'Gt', 'Lt' operators, the value must be an integer".into(),
            ),
            (
                "x<".into(),
                "unable to parse requirement: values[0]: Invalid value: \"\": for 'Gt', 'Lt' operators, the value must be an integer".into(),
            ),
            (
                "x>-1".into(),
                format!("unable to parse requirement: values[0][x]: Invalid value: \"-1\": {VALUE_REGEX}"),
            ),
            (
                "x>a_".into(),
                format!(
                    "unable to parse requirement: [values[0]: Invalid value: \"a_\": for 'Gt', 'Lt' operators, the value must be an integer, values[0][x]: Invalid value: \"a_\": {VALUE_REGEX}]"
                ),
            ),
        ];
        for (input, want) in cases {
            assert_eq!(label_err(&input), want, "{input:?}");
        }
        // The longest valid key name and value are accepted.
        let ok = format!("{}={}", "k".repeat(63), "v".repeat(63));
        assert!(LabelSelector::parse(&ok).is_ok());
        let ok = format!("{}/k", "a".repeat(253));
        assert!(LabelSelector::parse(&ok).is_ok());
    }

    #[test]
    fn label_selectors_match_like_upstream() {
        let set = labels(&[("a", "1"), ("b", "2"), ("n", "5"), ("e", ""), ("s", "abc")]);
        let cases = [
            ("", true),
            ("a=1", true),
            ("a=2", false),
            ("a==1", true),
            ("a!=1", false),
            ("a!=2", true),
            ("c=1", false),
            ("c!=1", true),
            ("a in (1,3)", true),
            ("a in (3)", false),
            ("c in (1)", false),
            ("a notin (1)", false),
            ("a notin (3)", true),
            ("c notin (1)", true),
            ("a", true),
            ("c", false),
            ("!a", false),
            ("!c", true),
            ("e", true),
            ("e=", true),
            ("e in ()", true),
            ("e!=", false),
            ("a=", false),
            ("c=", false),
            ("c!=", true),
            ("n>4", true),
            ("n>5", false),
            ("n<6", true),
            ("n<5", false),
            ("c>0", false),
            ("c<10", false),
            ("s>0", false),
            ("s<0", false),
            ("a=1,b=2", true),
            ("a=1,b=3", false),
            ("a,!c,n>1,b notin (3)", true),
        ];
        for (input, want) in cases {
            let sel = LabelSelector::parse(input).unwrap();
            assert_eq!(sel.matches(&set), want, "{input:?} on BTreeMap");
            let hashed: HashMap<String, String> = set.clone().into_iter().collect();
            assert_eq!(sel.matches(&hashed), want, "{input:?} on HashMap");
            let json: serde_json::Map<String, Value> = set
                .iter()
                .map(|(k, v)| (k.clone(), Value::String(v.clone())))
                .collect();
            assert_eq!(sel.matches(&json), want, "{input:?} on a JSON map");
            let obj = json!({"metadata": {"name": "x", "labels": json}});
            assert_eq!(sel.matches_object(&obj), want, "{input:?} on an object");
        }
    }

    #[test]
    fn label_selectors_treat_missing_and_non_string_labels_as_absent() {
        let cases = [
            ("", true),
            ("a", false),
            ("!a", true),
            ("a!=1", true),
            ("a notin (1)", true),
            ("a=1", false),
            ("a in (1)", false),
        ];
        let non_string = json!({"a": 1});
        let Value::Object(non_string) = non_string else {
            panic!("not an object");
        };
        for (input, want) in cases {
            let sel = LabelSelector::parse(input).unwrap();
            assert_eq!(
                sel.matches_object(&json!({})),
                want,
                "{input:?} no metadata"
            );
            assert_eq!(
                sel.matches_object(&json!({"metadata": {"labels": null}})),
                want,
                "{input:?} null labels"
            );
            assert_eq!(sel.matches(&non_string), want, "{input:?} non-string");
        }
    }

    #[test]
    fn label_selector_display_round_trips() {
        let inputs = [
            "",
            "a=1",
            "a==1",
            "a!=1",
            "a=",
            "a in (x, y)",
            "a in ()",
            "a in (,x)",
            "a notin (y,x)",
            "a",
            "!a",
            "a>3",
            "a<3",
            "example.com/k in (v1,v2),!other,third==x,f!=",
            "z,y,x",
        ];
        for input in inputs {
            let sel = LabelSelector::parse(input).unwrap();
            let printed = sel.to_string();
            let reparsed = LabelSelector::parse(&printed)
                .unwrap_or_else(|e| panic!("{printed:?} does not reparse: {e}"));
            assert_eq!(reparsed, sel, "{input:?} -> {printed:?}");
            assert_eq!(reparsed.to_string(), printed, "{input:?}");
        }
    }

    #[test]
    fn requires_exact_match_follows_upstream() {
        let cases = [
            ("a=1", "a", Some("1")),
            ("a==1", "a", Some("1")),
            ("a in (1)", "a", Some("1")),
            ("a in (1,2)", "a", None),
            ("a!=1", "a", None),
            ("a", "a", None),
            ("b=1", "a", None),
            ("a=1,b=2", "b", Some("2")),
        ];
        for (input, key, want) in cases {
            let sel = LabelSelector::parse(input).unwrap();
            assert_eq!(sel.requires_exact_match(key), want, "{input:?} {key}");
        }
    }

    fn k8s_selector(
        match_labels: &[(&str, &str)],
        exprs: &[(&str, &str, Option<&[&str]>)],
    ) -> metav1::LabelSelector {
        metav1::LabelSelector {
            match_labels: if match_labels.is_empty() {
                None
            } else {
                Some(labels(match_labels))
            },
            match_expressions: if exprs.is_empty() {
                None
            } else {
                Some(
                    exprs
                        .iter()
                        .map(|(key, op, values)| metav1::LabelSelectorRequirement {
                            key: key.to_string(),
                            operator: op.to_string(),
                            values: values.map(|v| v.iter().map(|s| s.to_string()).collect()),
                        })
                        .collect(),
                )
            },
        }
    }

    #[test]
    fn from_k8s_converts_match_labels_and_expressions() {
        let cases: Vec<(metav1::LabelSelector, &str)> = vec![
            (metav1::LabelSelector::default(), ""),
            (k8s_selector(&[("b", "2"), ("a", "1")], &[]), "a=1,b=2"),
            (k8s_selector(&[("a", "")], &[]), "a="),
            (
                k8s_selector(&[], &[("x", "In", Some(&["b", "a"]))]),
                "x in (a,b)",
            ),
            (
                k8s_selector(&[], &[("x", "NotIn", Some(&["a"]))]),
                "x notin (a)",
            ),
            (k8s_selector(&[], &[("x", "Exists", None)]), "x"),
            (k8s_selector(&[], &[("x", "Exists", Some(&[]))]), "x"),
            (k8s_selector(&[], &[("x", "DoesNotExist", None)]), "!x"),
            (
                k8s_selector(
                    &[("app", "web")],
                    &[
                        ("tier", "In", Some(&["fe"])),
                        ("canary", "DoesNotExist", None),
                    ],
                ),
                "app=web,!canary,tier in (fe)",
            ),
        ];
        for (sel, want) in cases {
            let got = LabelSelector::from_k8s(&sel).unwrap();
            assert_eq!(got.to_string(), want);
            assert_eq!(got.is_empty(), want.is_empty());
        }
        let sel = LabelSelector::from_k8s(&k8s_selector(
            &[("app", "web")],
            &[
                ("tier", "NotIn", Some(&["db"])),
                ("canary", "DoesNotExist", None),
            ],
        ))
        .unwrap();
        let cases = [
            (labels(&[("app", "web")]), true),
            (labels(&[("app", "web"), ("tier", "fe")]), true),
            (labels(&[("app", "web"), ("tier", "db")]), false),
            (labels(&[("app", "web"), ("canary", "")]), false),
            (labels(&[("app", "api")]), false),
            (labels(&[]), false),
        ];
        for (set, want) in cases {
            assert_eq!(sel.matches(&set), want, "{set:?}");
        }
        assert!(LabelSelector::from_k8s(&metav1::LabelSelector::default())
            .unwrap()
            .matches(&labels(&[("any", "thing")])));
    }

    #[test]
    fn from_k8s_rejects_what_label_selector_as_selector_rejects() {
        let cases: Vec<(metav1::LabelSelector, String)> = vec![
            (
                k8s_selector(&[], &[("x", "Foo", None)]),
                "\"Foo\" is not a valid pod selector operator".into(),
            ),
            (
                k8s_selector(&[], &[("x", "in", Some(&["a"]))]),
                "\"in\" is not a valid pod selector operator".into(),
            ),
            (
                k8s_selector(&[], &[("x", "Gt", Some(&["1"]))]),
                "\"Gt\" is not a valid pod selector operator".into(),
            ),
            (
                k8s_selector(&[], &[("x", "In", None)]),
                "values: Invalid value: []string(nil): for 'in', 'notin' operators, values set can't be empty".into(),
            ),
            (
                k8s_selector(&[], &[("x", "NotIn", Some(&[]))]),
                "values: Invalid value: []string(nil): for 'in', 'notin' operators, values set can't be empty".into(),
            ),
            (
                k8s_selector(&[], &[("x", "Exists", Some(&["a"]))]),
                "values: Invalid value: []string{\"a\"}: values set must be empty for exists and does not exist".into(),
            ),
            (
                k8s_selector(&[], &[("x", "DoesNotExist", Some(&["a", "b"]))]),
                "values: Invalid value: []string{\"a\", \"b\"}: values set must be empty for exists and does not exist".into(),
            ),
            (
                k8s_selector(&[("a$", "b")], &[]),
                format!("key: Invalid value: \"a$\": {NAME_PART_REGEX}"),
            ),
            (
                k8s_selector(&[("a", "b$")], &[]),
                format!("values[0][a]: Invalid value: \"b$\": {VALUE_REGEX}"),
            ),
            (
                k8s_selector(&[("a$", "b$")], &[]),
                format!(
                    "[key: Invalid value: \"a$\": {NAME_PART_REGEX}, values[0][a$]: Invalid value: \"b$\": {VALUE_REGEX}]"
                ),
            ),
            (
                k8s_selector(&[], &[("", "Exists", None)]),
                format!("key: Invalid value: \"\": name part must be non-empty; {NAME_PART_REGEX}"),
            ),
            (
                k8s_selector(&[], &[("x", "In", Some(&["ok", "not ok"]))]),
                format!("values[1][x]: Invalid value: \"not ok\": {VALUE_REGEX}"),
            ),
        ];
        for (sel, want) in cases {
            match LabelSelector::from_k8s(&sel) {
                Ok(got) => panic!("{sel:?} converted to {got}"),
                Err(e) => {
                    assert!(matches!(e, SelectorError::InvalidLabelSelector(_)), "{e:?}");
                    assert_eq!(e.to_string(), want);
                }
            }
        }
    }

    #[test]
    fn requirement_new_validates_value_counts() {
        let cases: Vec<(Operator, Vec<&str>, Option<&str>)> = vec![
            (Operator::Equals, vec!["a"], None),
            (
                Operator::Equals,
                vec!["a", "b"],
                Some("values: Invalid value: []string{\"a\", \"b\"}: exact-match compatibility requires one single value"),
            ),
            (
                Operator::NotEquals,
                vec![],
                Some("values: Invalid value: []string(nil): exact-match compatibility requires one single value"),
            ),
            (Operator::GreaterThan, vec!["10"], None),
            (
                Operator::LessThan,
                vec!["1", "2"],
                Some("values: Invalid value: []string{\"1\", \"2\"}: for 'Gt', 'Lt' operators, exactly one value is required"),
            ),
            (Operator::In, vec!["a", "b"], None),
            (Operator::DoesNotExist, vec![], None),
        ];
        for (op, values, want) in cases {
            let values: Vec<String> = values.into_iter().map(String::from).collect();
            let got = Requirement::new("k", op, values.clone());
            match want {
                None => {
                    let r = got.unwrap();
                    assert_eq!((r.key(), r.operator(), r.values()), ("k", op, &values[..]));
                }
                Some(msg) => assert_eq!(got.unwrap_err().to_string(), msg, "{op:?}"),
            }
        }
    }

    fn field_err(s: &str) -> SelectorError {
        match FieldSelector::parse(s) {
            Ok(sel) => panic!("{s:?} parsed as {sel:?}"),
            Err(e) => e,
        }
    }

    #[test]
    fn field_selectors_parse_with_upstream_escaping() {
        use FieldOperator::{Equals as Eq, NotEquals as Ne};
        type Term<'a> = (&'a str, FieldOperator, &'a str);
        let cases: Vec<(&str, Vec<Term>, &str)> = vec![
            ("", vec![], ""),
            (",", vec![], ""),
            (",,", vec![], ""),
            ("a=b", vec![("a", Eq, "b")], "a=b"),
            ("a==b", vec![("a", Eq, "b")], "a=b"),
            ("a!=b", vec![("a", Ne, "b")], "a!=b"),
            ("a=", vec![("a", Eq, "")], "a="),
            ("a!=", vec![("a", Ne, "")], "a!="),
            ("b=1,a=2", vec![("a", Eq, "2"), ("b", Eq, "1")], "a=2,b=1"),
            ("a=b,", vec![("a", Eq, "b")], "a=b"),
            ("a=b\\,c", vec![("a", Eq, "b,c")], "a=b\\,c"),
            ("a=b\\=c", vec![("a", Eq, "b=c")], "a=b\\=c"),
            ("a=b\\\\c", vec![("a", Eq, "b\\c")], "a=b\\\\c"),
            ("a=\\,\\=\\\\", vec![("a", Eq, ",=\\")], "a=\\,\\=\\\\"),
            (
                "x=1\\,2,y!=3",
                vec![("x", Eq, "1,2"), ("y", Ne, "3")],
                "x=1\\,2,y!=3",
            ),
            ("a = b", vec![("a ", Eq, " b")], "a = b"),
            ("=", vec![], ""),
            ("==", vec![], ""),
            ("!=", vec![], ""),
            ("a=b,=", vec![("a", Eq, "b")], "a=b"),
            ("=x", vec![("", Eq, "x")], "=x"),
            ("a!b=c", vec![("a!b", Eq, "c")], "a!b=c"),
            (
                "spec.nodeName=é",
                vec![("spec.nodeName", Eq, "é")],
                "spec.nodeName=é",
            ),
            (
                "metadata.name=web,status.phase!=Running",
                vec![
                    ("metadata.name", Eq, "web"),
                    ("status.phase", Ne, "Running"),
                ],
                "metadata.name=web,status.phase!=Running",
            ),
        ];
        for (input, want, printed) in cases {
            let sel = FieldSelector::parse(input)
                .unwrap_or_else(|e| panic!("{input:?} failed to parse: {e}"));
            let got: Vec<Term> = sel
                .requirements()
                .iter()
                .map(|r| (r.field.as_str(), r.op, r.value.as_str()))
                .collect();
            assert_eq!(got, want, "{input:?}");
            assert_eq!(sel.to_string(), printed, "{input:?}");
            assert_eq!(sel.is_empty(), want.is_empty(), "{input:?}");
            assert_eq!(FieldSelector::parse(printed).unwrap(), sel, "{input:?}");
        }
        let from_str: FieldSelector = "a=b".parse().unwrap();
        assert_eq!(from_str, FieldSelector::parse("a=b").unwrap());
        assert!(FieldSelector::everything().is_empty());
    }

    #[test]
    fn field_selector_errors_match_upstream() {
        let cases = [
            ("abc", "invalid selector: 'abc'; can't understand 'abc'"),
            (
                "a=b,xyz",
                "invalid selector: 'a=b,xyz'; can't understand 'xyz'",
            ),
            (
                "a in (b)",
                "invalid selector: 'a in (b)'; can't understand 'a in (b)'",
            ),
            (
                "a=b=c",
                "invalid field selector: unescaped character in value: 61",
            ),
            (
                "a===b",
                "invalid field selector: unescaped character in value: 61",
            ),
            (
                "a!==b",
                "invalid field selector: unescaped character in value: 61",
            ),
            (
                "a\\=b=c",
                "invalid field selector: unescaped character in value: 61",
            ),
            (
                "a=b\\c",
                "invalid field selector: invalid escape sequence: \\c",
            ),
            (
                "a=b\\",
                "invalid field selector: invalid escape sequence: \\",
            ),
            (
                "a=\\é",
                "invalid field selector: invalid escape sequence: \\é",
            ),
        ];
        for (input, want) in cases {
            assert_eq!(field_err(input).to_string(), want, "{input:?}");
        }
        assert_eq!(field_err("a=b=c"), SelectorError::UnescapedCharacter('='));
        assert_eq!(
            field_err("zzz,aaa"),
            SelectorError::InvalidFieldSelector {
                selector: "zzz,aaa".into(),
                term: "aaa".into()
            },
            "terms are sorted before they are parsed"
        );
    }

    #[test]
    fn field_selectors_match_through_a_getter() {
        let fields: HashMap<&str, &str> = HashMap::from([("a", "1"), ("e", "")]);
        let get = |f: &str| fields.get(f).map(|v| v.to_string());
        let cases = [
            ("", true),
            ("a=1", true),
            ("a==1", true),
            ("a=2", false),
            ("a!=1", false),
            ("a!=2", true),
            ("b=", true),
            ("b!=", false),
            ("b=1", false),
            ("b!=1", true),
            ("e=", true),
            ("a=1,b!=x", true),
            ("a=1,b=x", false),
        ];
        for (input, want) in cases {
            let sel = FieldSelector::parse(input).unwrap();
            assert_eq!(sel.matches(&get), want, "{input:?}");
        }
    }

    #[test]
    fn single_name_needs_a_lone_metadata_name_equality() {
        let cases = [
            ("metadata.name=web", Some("web")),
            ("metadata.name==web", Some("web")),
            ("metadata.name=we\\,b", Some("we,b")),
            ("metadata.name=", Some("")),
            ("metadata.name!=web", None),
            ("metadata.name=web,spec.nodeName=n", None),
            ("metadata.name=web,metadata.namespace=ns", None),
            ("metadata.namespace=web", None),
            ("", None),
        ];
        for (input, want) in cases {
            let sel = FieldSelector::parse(input).unwrap();
            assert_eq!(sel.single_name(), want, "{input:?}");
        }
        let sel = FieldSelector::parse("spec.nodeName=n,metadata.name=web").unwrap();
        assert_eq!(sel.requires_exact_match("metadata.name"), Some("web"));
        assert_eq!(sel.requires_exact_match("status.phase"), None);
        let sel = FieldSelector::parse("metadata.name!=web").unwrap();
        assert_eq!(sel.requires_exact_match("metadata.name"), None);
    }

    fn unsupported(field: &str, message: UnsupportedFieldMessage) -> SelectorError {
        SelectorError::UnsupportedField {
            field: field.to_string(),
            message,
        }
    }

    #[test]
    fn unsupported_field_messages_match_upstream() {
        let cases = [
            (
                unsupported("spec.foo", UnsupportedFieldMessage::NotSupported),
                "field label not supported: spec.foo",
            ),
            (
                unsupported("status.failed", UnsupportedFieldMessage::NotSupportedForKind("Job")),
                "field label \"status.failed\" not supported for Job",
            ),
            (
                unsupported("foo.bar", UnsupportedFieldMessage::OnlyMetadata),
                "\"foo.bar\" is not a known field selector: only \"metadata.name\", \"metadata.namespace\"",
            ),
        ];
        for (err, want) in cases {
            assert_eq!(err.to_string(), want);
        }
    }

    #[test]
    fn pods_expose_upstreams_selectable_fields() {
        let pod = json!({
            "metadata": {"name": "web-0", "namespace": "prod"},
            "spec": {
                "nodeName": "node-1",
                "restartPolicy": "Always",
                "schedulerName": "default-scheduler",
                "serviceAccountName": "web",
                "hostNetwork": true
            },
            "status": {
                "phase": "Running",
                "podIP": "10.0.0.7",
                "podIPs": [{"ip": "10.0.0.7"}, {"ip": "fd00::7"}],
                "nominatedNodeName": "node-2"
            }
        });
        let bare = json!({"metadata": {"name": "bare"}});
        let cases = [
            ("metadata.name", Some("web-0"), Some("bare")),
            ("metadata.namespace", Some("prod"), Some("")),
            ("spec.nodeName", Some("node-1"), Some("")),
            ("spec.host", Some("node-1"), Some("")),
            ("spec.restartPolicy", Some("Always"), Some("")),
            ("spec.schedulerName", Some("default-scheduler"), Some("")),
            ("spec.serviceAccountName", Some("web"), Some("")),
            ("spec.hostNetwork", Some("true"), Some("false")),
            ("status.phase", Some("Running"), Some("")),
            ("status.podIP", Some("10.0.0.7"), Some("")),
            ("status.podIPs", None, None),
            ("status.nominatedNodeName", Some("node-2"), Some("")),
        ];
        for (field, full, empty) in cases {
            let got = field_value("", "pods", &pod, field).unwrap();
            assert_eq!(got.as_deref(), full, "{field} on a full pod");
            let got = field_value("", "pods", &bare, field).unwrap();
            assert_eq!(got.as_deref(), empty, "{field} on a bare pod");
        }
        // Only status.podIPs set: the first IP is the primary one.
        let ips_only = json!({"status": {"podIPs": [{"ip": "10.1.1.1"}, {"ip": "fd00::1"}]}});
        assert_eq!(
            field_value("", "pods", &ips_only, "status.podIP")
                .unwrap()
                .as_deref(),
            Some("10.1.1.1")
        );
        let no_host_network = json!({"spec": {"hostNetwork": false}});
        assert_eq!(
            field_value("", "pods", &no_host_network, "spec.hostNetwork")
                .unwrap()
                .as_deref(),
            Some("false")
        );
        for field in [
            "spec.containers",
            "status.hostIP",
            "metadata.uid",
            "name",
            "spec.nodename",
        ] {
            assert_eq!(
                field_value("", "pods", &pod, field).unwrap_err(),
                unsupported(field, UnsupportedFieldMessage::NotSupported),
                "{field}"
            );
        }
    }

    #[test]
    fn other_core_kinds_expose_upstreams_selectable_fields() {
        use UnsupportedFieldMessage::{NotSupported, OnlyMetadata};
        let node = json!({"metadata": {"name": "n1"}, "spec": {"unschedulable": true}});
        let ns = json!({"metadata": {"name": "prod"}, "status": {"phase": "Terminating"}});
        let rc = json!({"metadata": {"name": "rc", "namespace": "d"}, "status": {"replicas": 3}});
        let secret =
            json!({"metadata": {"name": "s", "namespace": "d"}, "type": "kubernetes.io/tls"});
        let svc = json!({"metadata": {"name": "svc", "namespace": "d"},
            "spec": {"clusterIP": "10.96.0.10", "type": "ClusterIP"}});
        let empty = json!({});
        type Case<'a> = (
            &'a str,
            &'a Value,
            &'a str,
            Result<Option<&'a str>, SelectorError>,
        );
        let cases: Vec<Case> = vec![
            ("nodes", &node, "metadata.name", Ok(Some("n1"))),
            ("nodes", &node, "spec.unschedulable", Ok(Some("true"))),
            ("nodes", &empty, "spec.unschedulable", Ok(Some("false"))),
            (
                "nodes",
                &node,
                "metadata.namespace",
                Err(unsupported("metadata.namespace", NotSupported)),
            ),
            (
                "nodes",
                &node,
                "status.phase",
                Err(unsupported("status.phase", NotSupported)),
            ),
            ("namespaces", &ns, "metadata.name", Ok(Some("prod"))),
            ("namespaces", &ns, "status.phase", Ok(Some("Terminating"))),
            ("namespaces", &empty, "status.phase", Ok(Some(""))),
            (
                "namespaces",
                &ns,
                "metadata.namespace",
                Err(unsupported("metadata.namespace", NotSupported)),
            ),
            (
                "namespaces",
                &ns,
                "name",
                Err(unsupported("name", NotSupported)),
            ),
            (
                "replicationcontrollers",
                &rc,
                "status.replicas",
                Ok(Some("3")),
            ),
            (
                "replicationcontrollers",
                &empty,
                "status.replicas",
                Ok(Some("0")),
            ),
            (
                "replicationcontrollers",
                &rc,
                "metadata.namespace",
                Ok(Some("d")),
            ),
            (
                "replicationcontrollers",
                &rc,
                "spec.replicas",
                Err(unsupported("spec.replicas", NotSupported)),
            ),
            ("secrets", &secret, "type", Ok(Some("kubernetes.io/tls"))),
            ("secrets", &empty, "type", Ok(Some(""))),
            ("secrets", &secret, "metadata.namespace", Ok(Some("d"))),
            (
                "secrets",
                &secret,
                "data",
                Err(unsupported("data", NotSupported)),
            ),
            ("services", &svc, "spec.clusterIP", Ok(Some("10.96.0.10"))),
            ("services", &svc, "spec.type", Ok(Some("ClusterIP"))),
            ("services", &svc, "metadata.name", Ok(Some("svc"))),
            (
                "services",
                &svc,
                "spec.ports",
                Err(unsupported("spec.ports", NotSupported)),
            ),
            ("configmaps", &secret, "metadata.name", Ok(Some("s"))),
            ("configmaps", &secret, "metadata.namespace", Ok(Some("d"))),
            (
                "configmaps",
                &secret,
                "data.key",
                Err(unsupported("data.key", OnlyMetadata)),
            ),
            (
                "persistentvolumeclaims",
                &secret,
                "spec.volumeName",
                Err(unsupported("spec.volumeName", OnlyMetadata)),
            ),
            (
                "persistentvolumeclaims",
                &secret,
                "name",
                Err(unsupported("name", OnlyMetadata)),
            ),
            ("persistentvolumes", &node, "metadata.name", Ok(Some("n1"))),
            (
                "persistentvolumes",
                &node,
                "metadata.namespace",
                Ok(Some("")),
            ),
            (
                "persistentvolumes",
                &node,
                "spec.claimRef.name",
                Err(unsupported("spec.claimRef.name", OnlyMetadata)),
            ),
            ("serviceaccounts", &secret, "metadata.name", Ok(Some("s"))),
            (
                "serviceaccounts",
                &secret,
                "secrets",
                Err(unsupported("secrets", OnlyMetadata)),
            ),
            (
                "endpoints",
                &secret,
                "subsets",
                Err(unsupported("subsets", OnlyMetadata)),
            ),
        ];
        for (resource, obj, field, want) in cases {
            let got = field_value("", resource, obj, field);
            assert_eq!(
                got.as_ref().map(|v| v.as_deref()),
                want.as_ref().map(|v| *v),
                "{resource} {field}"
            );
        }
    }

    #[test]
    fn core_events_expose_upstreams_selectable_fields() {
        let event = json!({
            "metadata": {"name": "web.1", "namespace": "prod"},
            "involvedObject": {
                "kind": "Pod", "namespace": "prod", "name": "web", "uid": "u-1",
                "apiVersion": "v1", "resourceVersion": "42", "fieldPath": "spec.containers{c}"
            },
            "reason": "Started",
            "reportingComponent": "kubelet",
            "source": {"component": "kubelet-old"},
            "type": "Normal"
        });
        let cases = [
            ("metadata.name", "web.1"),
            ("metadata.namespace", "prod"),
            ("involvedObject.kind", "Pod"),
            ("involvedObject.namespace", "prod"),
            ("involvedObject.name", "web"),
            ("involvedObject.uid", "u-1"),
            ("involvedObject.apiVersion", "v1"),
            ("involvedObject.resourceVersion", "42"),
            ("involvedObject.fieldPath", "spec.containers{c}"),
            ("reason", "Started"),
            ("reportingComponent", "kubelet"),
            ("source", "kubelet-old"),
            ("type", "Normal"),
        ];
        for (field, want) in cases {
            let got = field_value("", "events", &event, field).unwrap();
            assert_eq!(got.as_deref(), Some(want), "{field}");
        }
        // Without source.component, upstream falls back to the reporting component.
        let newer = json!({"reportingComponent": "scheduler"});
        assert_eq!(
            field_value("", "events", &newer, "source")
                .unwrap()
                .as_deref(),
            Some("scheduler")
        );
        assert_eq!(
            field_value("", "events", &json!({}), "source")
                .unwrap()
                .as_deref(),
            Some("")
        );
        for field in ["regarding.name", "message", "reportingController"] {
            assert_eq!(
                field_value("", "events", &event, field).unwrap_err(),
                unsupported(field, UnsupportedFieldMessage::NotSupported),
                "{field}"
            );
        }
    }

    #[test]
    fn events_k8s_io_events_use_their_own_field_names() {
        let event = json!({
            "metadata": {"name": "web.1", "namespace": "prod"},
            "regarding": {
                "kind": "Pod", "namespace": "prod", "name": "web", "uid": "u-1",
                "apiVersion": "v1", "resourceVersion": "42", "fieldPath": "spec.containers{c}"
            },
            "reason": "Started",
            "reportingController": "kubelet",
            "deprecatedSource": {"component": "kubelet-old"},
            "type": "Warning"
        });
        let cases = [
            ("metadata.name", "web.1"),
            ("metadata.namespace", "prod"),
            ("regarding.kind", "Pod"),
            ("regarding.namespace", "prod"),
            ("regarding.name", "web"),
            ("regarding.uid", "u-1"),
            ("regarding.apiVersion", "v1"),
            ("regarding.resourceVersion", "42"),
            ("regarding.fieldPath", "spec.containers{c}"),
            ("reason", "Started"),
            ("reportingController", "kubelet"),
            ("source", "kubelet-old"),
            ("type", "Warning"),
        ];
        for (field, want) in cases {
            let got = field_value("events.k8s.io", "events", &event, field).unwrap();
            assert_eq!(got.as_deref(), Some(want), "{field}");
        }
        let newer = json!({"reportingController": "scheduler"});
        assert_eq!(
            field_value("events.k8s.io", "events", &newer, "source")
                .unwrap()
                .as_deref(),
            Some("scheduler")
        );
        for field in ["involvedObject.name", "reportingComponent", "note"] {
            assert_eq!(
                field_value("events.k8s.io", "events", &event, field).unwrap_err(),
                unsupported(field, UnsupportedFieldMessage::NotSupported),
                "{field}"
            );
        }
    }

    #[test]
    fn workload_and_certificate_kinds_expose_upstreams_selectable_fields() {
        use UnsupportedFieldMessage::{NotSupported, NotSupportedForKind, OnlyMetadata};
        let job = json!({"metadata": {"name": "j", "namespace": "d"}, "status": {"succeeded": 2}});
        let rs = json!({"metadata": {"name": "rs", "namespace": "d"}, "status": {"replicas": 3}});
        let csr = json!({"metadata": {"name": "csr-1"}, "spec": {"signerName": "kubernetes.io/kubelet-serving"}});
        let custom = json!({"metadata": {"name": "w", "namespace": "d"}, "spec": {"size": 1}});
        let empty = json!({});
        type Case<'a> = (
            &'a str,
            &'a str,
            &'a Value,
            &'a str,
            Result<Option<&'a str>, SelectorError>,
        );
        let cases: Vec<Case> = vec![
            ("batch", "jobs", &job, "status.successful", Ok(Some("2"))),
            ("batch", "jobs", &empty, "status.successful", Ok(Some("0"))),
            ("batch", "jobs", &job, "metadata.namespace", Ok(Some("d"))),
            (
                "batch",
                "jobs",
                &job,
                "status.succeeded",
                Err(unsupported("status.succeeded", NotSupportedForKind("Job"))),
            ),
            (
                "batch",
                "cronjobs",
                &job,
                "spec.schedule",
                Err(unsupported("spec.schedule", OnlyMetadata)),
            ),
            ("apps", "replicasets", &rs, "metadata.name", Ok(Some("rs"))),
            (
                "apps",
                "replicasets",
                &rs,
                "status.replicas",
                Err(unsupported("status.replicas", OnlyMetadata)),
            ),
            (
                "apps",
                "deployments",
                &rs,
                "status.replicas",
                Err(unsupported("status.replicas", OnlyMetadata)),
            ),
            (
                "apps",
                "statefulsets",
                &rs,
                "metadata.namespace",
                Ok(Some("d")),
            ),
            (
                "certificates.k8s.io",
                "certificatesigningrequests",
                &csr,
                "spec.signerName",
                Ok(Some("kubernetes.io/kubelet-serving")),
            ),
            (
                "certificates.k8s.io",
                "certificatesigningrequests",
                &csr,
                "metadata.name",
                Ok(Some("csr-1")),
            ),
            (
                "certificates.k8s.io",
                "certificatesigningrequests",
                &csr,
                "metadata.namespace",
                Err(unsupported("metadata.namespace", NotSupported)),
            ),
            (
                "certificates.k8s.io",
                "certificatesigningrequests",
                &csr,
                "spec.username",
                Err(unsupported("spec.username", NotSupported)),
            ),
            (
                "certificates.k8s.io",
                "clustertrustbundles",
                &csr,
                "spec.signerName",
                Ok(Some("kubernetes.io/kubelet-serving")),
            ),
            (
                "networking.k8s.io",
                "ingresses",
                &custom,
                "foo.bar",
                Err(unsupported("foo.bar", OnlyMetadata)),
            ),
            (
                "example.com",
                "widgets",
                &custom,
                "metadata.name",
                Ok(Some("w")),
            ),
            (
                "example.com",
                "widgets",
                &custom,
                "spec.size",
                Err(unsupported("spec.size", OnlyMetadata)),
            ),
            // A resource name only selects a kind's fields within its own group.
            (
                "apps",
                "pods",
                &custom,
                "spec.nodeName",
                Err(unsupported("spec.nodeName", OnlyMetadata)),
            ),
            (
                "",
                "jobs",
                &job,
                "status.successful",
                Err(unsupported("status.successful", OnlyMetadata)),
            ),
        ];
        for (group, resource, obj, field, want) in cases {
            let got = field_value(group, resource, obj, field);
            assert_eq!(
                got.as_ref().map(|v| v.as_deref()),
                want.as_ref().map(|v| *v),
                "{group}/{resource} {field}"
            );
        }
    }

    #[test]
    fn selectable_fields_lists_every_field_a_kind_accepts() {
        assert_eq!(
            selectable_fields("", "nodes"),
            vec!["metadata.name", "spec.unschedulable"]
        );
        assert_eq!(
            selectable_fields("", "configmaps"),
            vec!["metadata.name", "metadata.namespace"]
        );
        assert_eq!(
            selectable_fields("batch", "jobs"),
            vec!["metadata.name", "metadata.namespace", "status.successful"]
        );
        // Every listed field is accepted, so the list and the lookup cannot drift apart.
        for (group, resource) in [
            ("", "pods"),
            ("", "nodes"),
            ("", "namespaces"),
            ("", "replicationcontrollers"),
            ("", "secrets"),
            ("", "services"),
            ("", "events"),
            ("events.k8s.io", "events"),
            ("batch", "jobs"),
            ("certificates.k8s.io", "certificatesigningrequests"),
            ("apps", "replicasets"),
        ] {
            let fields = selectable_fields(group, resource);
            assert!(fields.contains(&"metadata.name"), "{group}/{resource}");
            for field in fields {
                assert!(
                    field_value(group, resource, &json!({}), field).is_ok(),
                    "{group}/{resource} {field}"
                );
            }
        }
    }

    #[test]
    fn check_fields_reports_the_first_unsupported_field() {
        let cases = [
            ("", "pods", "", Ok(())),
            ("", "pods", "status.phase=Running,spec.nodeName=n1", Ok(())),
            ("", "pods", "metadata.name=a,spec.host=n1", Ok(())),
            (
                "",
                "pods",
                "status.phase=Running,spec.foo=1",
                Err(unsupported(
                    "spec.foo",
                    UnsupportedFieldMessage::NotSupported,
                )),
            ),
            (
                "",
                "pods",
                "zzz=1,aaa=2",
                Err(unsupported("aaa", UnsupportedFieldMessage::NotSupported)),
            ),
            (
                "",
                "configmaps",
                "metadata.namespace!=kube-system,data.x=1",
                Err(unsupported("data.x", UnsupportedFieldMessage::OnlyMetadata)),
            ),
            (
                "",
                "configmaps",
                "=x",
                Err(unsupported("", UnsupportedFieldMessage::OnlyMetadata)),
            ),
            ("", "configmaps", "=", Ok(())),
        ];
        for (group, resource, selector, want) in cases {
            let sel = FieldSelector::parse(selector).unwrap();
            assert_eq!(
                check_fields(group, resource, &sel),
                want,
                "{resource} {selector:?}"
            );
        }
    }

    #[test]
    fn field_selectors_match_objects_per_kind() {
        let pod = json!({
            "metadata": {"name": "web-0", "namespace": "prod"},
            "spec": {"nodeName": "node-1"},
            "status": {"phase": "Running"}
        });
        let cases = [
            ("", true),
            ("status.phase=Running", true),
            ("status.phase==Running", true),
            ("status.phase!=Running", false),
            ("status.phase=Pending", false),
            ("spec.nodeName=node-1,metadata.namespace=prod", true),
            ("spec.nodeName=node-1,metadata.namespace!=prod", false),
            ("spec.host=node-1", true),
            ("spec.nodeName=", false),
            ("spec.schedulerName=", true),
            ("spec.hostNetwork=false", true),
            ("spec.hostNetwork=true", false),
            ("status.podIPs=", true),
            ("status.podIPs=10.0.0.1", false),
            ("metadata.name=web-0", true),
        ];
        for (selector, want) in cases {
            let sel = FieldSelector::parse(selector).unwrap();
            assert_eq!(
                sel.matches_object("", "pods", &pod),
                Ok(want),
                "{selector:?}"
            );
        }
        // An unsupported field is an error even when another term already fails.
        let sel = FieldSelector::parse("status.phase=Pending,status.reason=x").unwrap();
        assert_eq!(
            sel.matches_object("", "pods", &pod),
            Err(unsupported(
                "status.reason",
                UnsupportedFieldMessage::NotSupported
            ))
        );
        let node = json!({"metadata": {"name": "n1"}});
        let sel = FieldSelector::parse("spec.unschedulable=false").unwrap();
        assert_eq!(sel.matches_object("", "nodes", &node), Ok(true));
        let sel = FieldSelector::parse("spec.unschedulable!=false").unwrap();
        assert_eq!(sel.matches_object("", "nodes", &node), Ok(false));
    }

    #[test]
    fn go_quoting_escapes_like_strconv_quote() {
        let cases = [
            ("plain", "\"plain\""),
            ("a\"b", "\"a\\\"b\""),
            ("a\\b", "\"a\\\\b\""),
            ("tab\there", "\"tab\\there\""),
            ("nl\n", "\"nl\\n\""),
            ("\u{1}", "\"\\x01\""),
            ("\u{7f}", "\"\\x7f\""),
            ("\u{85}", "\"\\u0085\""),
            ("é", "\"é\""),
        ];
        for (input, want) in cases {
            assert_eq!(go_quote(input), want, "{input:?}");
        }
        assert_eq!(go_string_slice(&[]), "[]string(nil)");
        assert_eq!(
            go_string_slice(&["a".to_string(), "b\"".to_string()]),
            "[]string{\"a\", \"b\\\"\"}"
        );
    }
}
