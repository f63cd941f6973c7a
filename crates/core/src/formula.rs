//! Formula queries (`{"formula": <expression>, "defaults": {..}}`): a score computed per
//! candidate point from its prefetch scores (`$score`, `$score[i]`), payload values, conditions
//! (1 when they hold, 0 otherwise), geo distances, datetimes and decay functions, as Qdrant
//! defines them. Arithmetic runs in `f64`; the result becomes an `f32` score, and anything
//! non-finite on the way (division by zero without `by_zero_default`, `sqrt` of a negative,
//! overflow) is an error naming the expression, as in Qdrant.

use serde_json::{Map, Value};

use crate::error::ValidationError;
use crate::filter::{geo_point_of, parse_datetime, Condition, Filter, GeoPoint, PointView};

use crate::json_path::JsonPath;

/// A parsed formula with its defaults.
#[derive(Debug, Clone, PartialEq)]
pub struct Formula {
    pub expr: Expr,
    /// Values used when a point lacks a payload key (by the key as written) or a prefetch score
    /// (by `$score[i]`).
    pub defaults: Map<String, Value>,
}

/// Which decay curve.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DecayKind {
    Lin,
    Exp,
    Gauss,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Expr {
    Const(f64),
    /// `$score[i]`: the point's score in prefetch `i`.
    Score(usize),
    /// A payload key holding a number.
    Payload(String, JsonPath),
    /// A condition: 1 when it holds, else 0 (kept as a one-condition filter).
    Condition(Box<Filter>),
    GeoDistance {
        origin: GeoPoint,
        to: (String, JsonPath),
    },
    /// A datetime constant, as seconds since the epoch.
    Datetime(f64),
    /// A payload key holding a datetime.
    DatetimeKey(String, JsonPath),
    Mult(Vec<Expr>),
    Sum(Vec<Expr>),
    Max(Vec<Expr>),
    Min(Vec<Expr>),
    Neg(Box<Expr>),
    Abs(Box<Expr>),
    Div {
        left: Box<Expr>,
        right: Box<Expr>,
        by_zero_default: Option<f64>,
    },
    Sqrt(Box<Expr>),
    Pow {
        base: Box<Expr>,
        exponent: Box<Expr>,
    },
    Exp(Box<Expr>),
    Log10(Box<Expr>),
    Ln(Box<Expr>),
    Acosh(Box<Expr>),
    Decay {
        kind: DecayKind,
        x: Box<Expr>,
        target: Option<Box<Expr>>,
        scale: f64,
        midpoint: f64,
    },
}

fn bad(msg: impl Into<String>) -> ValidationError {
    ValidationError::new(msg.into())
}

/// `$score` → 0, `$score[i]` → i, any other string → `None` (a payload key); a malformed
/// score reference is an error.
fn score_index(var: &str) -> Result<Option<usize>, ValidationError> {
    let Some(rest) = var.strip_prefix("$score") else { return Ok(None) };
    if rest.is_empty() {
        return Ok(Some(0));
    }
    let invalid = || bad(format!("Invalid score pattern: {var}"));
    let inner = rest.strip_prefix('[').and_then(|r| r.strip_suffix(']')).ok_or_else(invalid)?;
    if inner.is_empty() || !inner.bytes().all(|b| b.is_ascii_digit()) {
        return Err(invalid());
    }
    inner.parse().map(Some).map_err(|_| invalid())
}

fn path(key: &str, what: &str) -> Result<(String, JsonPath), ValidationError> {
    key.parse::<JsonPath>().map(|p| (key.to_string(), p)).map_err(|e| bad(format!("{what}: {e}")))
}

fn number(v: &Value, what: &str) -> Result<f64, ValidationError> {
    v.as_f64().ok_or_else(|| bad(format!("{what}: expected a number")))
}

impl Formula {
    /// Parse the query object `{"formula": .., "defaults": {..}}` (errors name `what`).
    pub fn from_json(v: &Value, what: &str) -> Result<Formula, ValidationError> {
        let o = v.as_object().ok_or_else(|| bad(format!("{what}: expected an object")))?;
        if let Some(k) = o.keys().find(|k| !matches!(k.as_str(), "formula" | "defaults")) {
            return Err(bad(format!("{what}: unknown field `{k}`")));
        }
        let expr = o.get("formula").ok_or_else(|| bad(format!("{what}.formula: missing")))?;
        let expr = Expr::from_json(expr, &format!("{what}.formula"))?;
        match o.get("defaults") {
            None | Some(Value::Null) => Formula::new(expr, Map::new()),
            Some(Value::Object(d)) => Formula::new(expr, d.clone()),
            Some(_) => Err(bad(format!("{what}.defaults: expected an object"))),
        }
    }

    /// A formula from its parts; `$score` and `$score[0]` in the defaults name the same one.
    pub fn new(expr: Expr, defaults: Map<String, Value>) -> Result<Formula, ValidationError> {
        let mut normalised = Map::new();
        for (k, val) in defaults {
            let key = match score_index(&k)? {
                Some(i) => format!("$score[{i}]"),
                None => k,
            };
            normalised.insert(key, val);
        }
        Ok(Formula { expr, defaults: normalised })
    }

    /// This formula with the text matches of its conditions bound to the collection's full-text
    /// indexes, as a filter's are (see [`Filter::with_text_indexes`]).
    pub fn with_text_indexes(&self, indexes: &crate::filter::TextIndexes) -> Formula {
        let mut bound = self.clone();
        bound.expr.for_each_filter(&mut |f: &mut Filter| {
            if let Some(b) = f.with_text_indexes(indexes) {
                *f = b;
            }
        });
        bound
    }

    /// Whether evaluating needs to know which vectors a point has (a `has_vector` condition).
    pub fn needs_vectors(&self) -> bool {
        self.expr.any(
            &|e| matches!(e, Expr::Condition(f) if f.conditions().iter().any(|c| matches!(c, Condition::HasVector(_)))),
        )
    }

    /// The formula's score for one point: `scores[i]` is its score in prefetch `i`, if it
    /// was among that prefetch's results.
    pub fn score(&self, point: &dyn PointView, scores: &[Option<f32>]) -> Result<f32, String> {
        let v = self.expr.eval(&Ctx { point, scores, defaults: &self.defaults })?;
        let s = v as f32;
        if !s.is_finite() {
            return Err(format!("The expression {v} as f32 = {s} produced a non-finite number"));
        }
        Ok(s)
    }
}

impl Expr {
    pub fn from_json(v: &Value, what: &str) -> Result<Expr, ValidationError> {
        let boxed = |v: &Value, w: &str| Expr::from_json(v, w).map(Box::new);
        let list = |v: &Value, w: &str| -> Result<Vec<Expr>, ValidationError> {
            let items = v.as_array().ok_or_else(|| bad(format!("{w}: expected a list of expressions")))?;
            items.iter().enumerate().map(|(i, e)| Expr::from_json(e, &format!("{w}[{i}]"))).collect()
        };
        match v {
            Value::Number(n) => n.as_f64().map(Expr::Const).ok_or_else(|| bad(format!("{what}: invalid number"))),
            Value::String(s) => Expr::variable(s, what),
            Value::Object(o) if o.len() == 1 => {
                let (key, inner) = o.iter().next().map(|(k, v)| (k.as_str(), v)).unwrap_or(("", v));
                let w = format!("{what}.{key}");
                match key {
                    "mult" => Ok(Expr::Mult(list(inner, &w)?)),
                    "sum" => Ok(Expr::Sum(list(inner, &w)?)),
                    "max" | "min" => {
                        let items = list(inner, &w)?;
                        if items.is_empty() {
                            return Err(bad(format!("`{key}` needs at least one operand")));
                        }
                        Ok(if key == "max" { Expr::Max(items) } else { Expr::Min(items) })
                    }
                    "neg" => Ok(Expr::Neg(boxed(inner, &w)?)),
                    "abs" => Ok(Expr::Abs(boxed(inner, &w)?)),
                    "sqrt" => Ok(Expr::Sqrt(boxed(inner, &w)?)),
                    "exp" => Ok(Expr::Exp(boxed(inner, &w)?)),
                    "log10" => Ok(Expr::Log10(boxed(inner, &w)?)),
                    "ln" => Ok(Expr::Ln(boxed(inner, &w)?)),
                    "acosh" => Ok(Expr::Acosh(boxed(inner, &w)?)),
                    "div" => {
                        let d = fields(inner, &w, &["left", "right", "by_zero_default"])?;
                        let left = boxed(required(d, "left", &w)?, &format!("{w}.left"))?;
                        let right = boxed(required(d, "right", &w)?, &format!("{w}.right"))?;
                        let by_zero_default = match d.get("by_zero_default") {
                            None | Some(Value::Null) => None,
                            Some(x) => Some(number(x, &format!("{w}.by_zero_default"))?),
                        };
                        Ok(Expr::Div { left, right, by_zero_default })
                    }
                    "pow" => {
                        let p = fields(inner, &w, &["base", "exponent"])?;
                        Ok(Expr::Pow {
                            base: boxed(required(p, "base", &w)?, &format!("{w}.base"))?,
                            exponent: boxed(required(p, "exponent", &w)?, &format!("{w}.exponent"))?,
                        })
                    }
                    "geo_distance" => {
                        let g = fields(inner, &w, &["origin", "to"])?;
                        let origin = geo_point_of(required(g, "origin", &w)?)
                            .ok_or_else(|| bad(format!("{w}.origin: expected {{\"lat\": .., \"lon\": ..}}")))?;
                        let to =
                            required(g, "to", &w)?.as_str().ok_or_else(|| bad(format!("{w}.to: expected a key")))?;
                        Expr::geo_distance(origin, to, &w)
                    }
                    "datetime" => {
                        let s = inner.as_str().ok_or_else(|| bad(format!("{w}: expected a datetime string")))?;
                        Expr::datetime(s)
                    }
                    "datetime_key" => {
                        let s = inner.as_str().ok_or_else(|| bad(format!("{w}: expected a payload key")))?;
                        Expr::datetime_key(s, &w)
                    }
                    "lin_decay" | "exp_decay" | "gauss_decay" => {
                        let kind = match key {
                            "lin_decay" => DecayKind::Lin,
                            "exp_decay" => DecayKind::Exp,
                            _ => DecayKind::Gauss,
                        };
                        decay(kind, inner, &w)
                    }
                    _ => condition(v, what),
                }
            }
            Value::Object(_) => condition(v, what),
            other => Err(bad(format!("{what}: expected an expression, got {other}"))),
        }
    }

    /// `$score`, `$score[i]` or a payload key.
    pub fn variable(s: &str, what: &str) -> Result<Expr, ValidationError> {
        match score_index(s)? {
            Some(i) => Ok(Expr::Score(i)),
            None => {
                let (k, p) = path(s, what)?;
                Ok(Expr::Payload(k, p))
            }
        }
    }

    pub fn datetime(s: &str) -> Result<Expr, ValidationError> {
        let dt = parse_datetime(s).ok_or_else(|| bad(format!("Expected datetime in supported format for {s}")))?;
        Ok(Expr::Datetime(seconds(&dt)))
    }

    pub fn datetime_key(key: &str, what: &str) -> Result<Expr, ValidationError> {
        let (k, p) = path(key, what)?;
        Ok(Expr::DatetimeKey(k, p))
    }

    pub fn geo_distance(origin: GeoPoint, to: &str, what: &str) -> Result<Expr, ValidationError> {
        origin.validate().map_err(|e| bad(format!("{what}.origin: {}", e.message)))?;
        Ok(Expr::GeoDistance { origin, to: path(to, &format!("{what}.to"))? })
    }

    /// A condition as an expression (validated as a filter condition is).
    pub fn condition(c: Condition, what: &str) -> Result<Expr, ValidationError> {
        let f = Filter { must: vec![c], ..Filter::default() };
        f.validate().map_err(|e| bad(format!("{what}: {}", e.message)))?;
        Ok(Expr::Condition(Box::new(f)))
    }

    /// A decay with Qdrant's defaults (scale 1, midpoint 0.5) and range checks.
    pub fn decay(
        kind: DecayKind,
        x: Expr,
        target: Option<Expr>,
        scale: Option<f64>,
        midpoint: Option<f64>,
    ) -> Result<Expr, ValidationError> {
        let (scale, midpoint) = (scale.unwrap_or(1.0), midpoint.unwrap_or(0.5));
        if kind == DecayKind::Lin {
            if !(0.0..=1.0).contains(&midpoint) {
                return Err(bad(format!("Linear decay midpoint should be in the range [0.0, 1.0], got {midpoint}")));
            }
        } else if midpoint.is_nan() || midpoint <= 0.0 || midpoint >= 1.0 {
            return Err(bad(format!("Decay midpoint should be in the range (0.0, 1.0), got {midpoint}")));
        }
        if scale.is_nan() || scale <= 0.0 {
            return Err(bad(format!("Scale must be non-zero positive, got {scale}")));
        }
        Ok(Expr::Decay { kind, x: Box::new(x), target: target.map(Box::new), scale, midpoint })
    }

    /// Whether `f` holds for this expression or any inside it.
    /// Apply `f` to the filter of every condition in the expression.
    fn for_each_filter(&mut self, f: &mut dyn FnMut(&mut Filter)) {
        match self {
            Expr::Condition(filter) => f(filter),
            Expr::Mult(v) | Expr::Sum(v) | Expr::Max(v) | Expr::Min(v) => {
                v.iter_mut().for_each(|e| e.for_each_filter(f))
            }
            Expr::Neg(e)
            | Expr::Abs(e)
            | Expr::Sqrt(e)
            | Expr::Exp(e)
            | Expr::Log10(e)
            | Expr::Ln(e)
            | Expr::Acosh(e) => e.for_each_filter(f),
            Expr::Div { left, right, .. } => {
                left.for_each_filter(f);
                right.for_each_filter(f);
            }
            Expr::Pow { base, exponent } => {
                base.for_each_filter(f);
                exponent.for_each_filter(f);
            }
            Expr::Decay { x, target, .. } => {
                x.for_each_filter(f);
                if let Some(t) = target {
                    t.for_each_filter(f);
                }
            }
            _ => {}
        }
    }

    fn any(&self, f: &dyn Fn(&Expr) -> bool) -> bool {
        if f(self) {
            return true;
        }
        match self {
            Expr::Mult(v) | Expr::Sum(v) | Expr::Max(v) | Expr::Min(v) => v.iter().any(|e| e.any(f)),
            Expr::Neg(e)
            | Expr::Abs(e)
            | Expr::Sqrt(e)
            | Expr::Exp(e)
            | Expr::Log10(e)
            | Expr::Ln(e)
            | Expr::Acosh(e) => e.any(f),
            Expr::Div { left, right, .. } => left.any(f) || right.any(f),
            Expr::Pow { base, exponent } => base.any(f) || exponent.any(f),
            Expr::Decay { x, target, .. } => x.any(f) || target.as_ref().is_some_and(|t| t.any(f)),
            _ => false,
        }
    }

    fn eval(&self, c: &Ctx<'_>) -> Result<f64, String> {
        let non_finite = |e: String| Err(format!("The expression {e} produced a non-finite number"));
        Ok(match self {
            Expr::Const(x) => *x,
            Expr::Score(i) => match c.scores.get(*i).copied().flatten() {
                Some(s) => s as f64,
                None => match c.defaults.get(&format!("$score[{i}]")) {
                    Some(Value::Null) | None => 0.0,
                    Some(v) => v.as_f64().ok_or_else(|| format!("Expected number value for $score[{i}] default"))?,
                },
            },
            Expr::Payload(key, p) => {
                let v = c.value(key, p)?;
                match v {
                    Value::Number(n) => n.as_f64().unwrap_or(f64::NAN),
                    _ => {
                        return Err(format!(
                            "Expected number value for {key} in the payload and/or in the formula defaults. Error: Value is not a number"
                        ))
                    }
                }
            }
            Expr::Condition(f) => {
                if f.check(c.point) {
                    1.0
                } else {
                    0.0
                }
            }
            Expr::GeoDistance { origin, to: (key, p) } => {
                let v = c.value(key, p)?;
                let to = geo_point_of(&v).ok_or_else(|| {
                    format!("Expected geo point for {key} in the payload and/or in the formula defaults.")
                })?;
                origin.distance_m(&to)
            }
            Expr::Datetime(s) => *s,
            Expr::DatetimeKey(key, p) => {
                let v = c.value(key, p)?;
                let dt = v.as_str().and_then(parse_datetime).ok_or_else(|| {
                    format!("Expected datetime for {key} in the payload and/or in the formula defaults.")
                })?;
                seconds(&dt)
            }
            Expr::Mult(items) => {
                let mut product = 1.0;
                for e in items {
                    let x = e.eval(c)?;
                    if x == 0.0 {
                        return Ok(x);
                    }
                    product *= x;
                }
                product
            }
            Expr::Sum(items) => {
                let mut sum = 0.0;
                for e in items {
                    sum += e.eval(c)?;
                }
                sum
            }
            Expr::Max(items) => items.iter().try_fold(f64::NEG_INFINITY, |m, e| e.eval(c).map(|x| m.max(x)))?,
            Expr::Min(items) => items.iter().try_fold(f64::INFINITY, |m, e| e.eval(c).map(|x| m.min(x)))?,
            Expr::Neg(e) => -e.eval(c)?,
            Expr::Abs(e) => e.eval(c)?.abs(),
            Expr::Div { left, right, by_zero_default } => {
                let l = left.eval(c)?;
                if l == 0.0 {
                    return Ok(l);
                }
                let r = right.eval(c)?;
                if r == 0.0 {
                    return match by_zero_default {
                        Some(d) => Ok(*d),
                        None => non_finite(format!("{l}/{r}")),
                    };
                }
                let q = l / r;
                if !q.is_finite() {
                    return non_finite(format!("{l}/{r}"));
                }
                q
            }
            Expr::Sqrt(e) => {
                let x = e.eval(c)?;
                if x < 0.0 || x.is_nan() {
                    return non_finite(format!("√{x}"));
                }
                x.sqrt()
            }
            Expr::Pow { base, exponent } => {
                let (b, e) = (base.eval(c)?, exponent.eval(c)?);
                let r = b.powf(e);
                if !r.is_finite() {
                    return non_finite(format!("{b}^{e}"));
                }
                r
            }
            Expr::Exp(e) => {
                let x = e.eval(c)?;
                let r = x.exp();
                if r.is_infinite() {
                    return non_finite(format!("exp({x})"));
                }
                r
            }
            Expr::Log10(e) | Expr::Ln(e) => {
                let x = e.eval(c)?;
                let name = if matches!(self, Expr::Ln(_)) { "ln" } else { "log10" };
                if x.is_nan() || x <= 0.0 || x.is_infinite() {
                    return non_finite(format!("{name}({x})"));
                }
                if name == "ln" {
                    x.ln()
                } else {
                    x.log10()
                }
            }
            Expr::Acosh(e) => {
                let x = e.eval(c)?;
                let r = x.acosh();
                if x.is_nan() || x < 1.0 || !r.is_finite() {
                    return non_finite(format!("acosh({x})"));
                }
                r
            }
            Expr::Decay { kind, x, target, scale, midpoint } => {
                let x = x.eval(c)?;
                let target = match target {
                    Some(t) => t.eval(c)?,
                    None => 0.0,
                };
                match kind {
                    DecayKind::Lin => (-((1.0 - midpoint) / scale) * (x - target).abs() + 1.0).max(0.0),
                    DecayKind::Exp => ((midpoint.ln() / scale) * (x - target).abs()).exp(),
                    DecayKind::Gauss => ((midpoint.ln() / (scale * scale)) * (x - target) * (x - target)).exp(),
                }
            }
        })
    }
}

fn seconds(dt: &chrono::DateTime<chrono::Utc>) -> f64 {
    dt.timestamp() as f64 + dt.timestamp_subsec_nanos() as f64 / 1e9
}

fn fields<'a>(v: &'a Value, what: &str, allowed: &[&str]) -> Result<&'a Map<String, Value>, ValidationError> {
    let o = v.as_object().ok_or_else(|| bad(format!("{what}: expected an object")))?;
    if let Some(k) = o.keys().find(|k| !allowed.contains(&k.as_str())) {
        return Err(bad(format!("{what}: unknown field `{k}`")));
    }
    Ok(o)
}

fn required<'a>(o: &'a Map<String, Value>, key: &str, what: &str) -> Result<&'a Value, ValidationError> {
    o.get(key).filter(|v| !v.is_null()).ok_or_else(|| bad(format!("{what}.{key}: missing")))
}

fn condition(v: &Value, what: &str) -> Result<Expr, ValidationError> {
    Expr::condition(Condition::from_json_at(v, what)?, what)
}

fn decay(kind: DecayKind, v: &Value, what: &str) -> Result<Expr, ValidationError> {
    let d = fields(v, what, &["x", "target", "scale", "midpoint"])?;
    let x = Expr::from_json(required(d, "x", what)?, &format!("{what}.x"))?;
    let target = match d.get("target") {
        None | Some(Value::Null) => None,
        Some(t) => Some(Expr::from_json(t, &format!("{what}.target"))?),
    };
    let opt = |k: &str| match d.get(k) {
        None | Some(Value::Null) => Ok(None),
        Some(x) => number(x, &format!("{what}.{k}")).map(Some),
    };
    Expr::decay(kind, x, target, opt("scale")?, opt("midpoint")?)
}

/// What an evaluation reads.
struct Ctx<'a> {
    point: &'a dyn PointView,
    scores: &'a [Option<f32>],
    defaults: &'a Map<String, Value>,
}

impl Ctx<'_> {
    /// The value of a payload key: its one value, else the default for the key as written; an
    /// empty list counts as missing, and a list of one value as that value.
    fn value(&self, key: &str, p: &JsonPath) -> Result<Value, String> {
        let from_payload: Vec<Value> =
            self.point.payload().map(|pl| p.values_flat(pl).into_iter().cloned().collect()).unwrap_or_default();
        let v = match from_payload.len() {
            0 => match self.defaults.get(key) {
                None | Some(Value::Null) => None,
                Some(Value::Array(a)) if a.is_empty() => None,
                Some(Value::Array(a)) if a.len() == 1 => Some(a[0].clone()),
                Some(d) => Some(d.clone()),
            },
            1 => from_payload.into_iter().next(),
            _ => Some(Value::Array(from_payload)),
        };
        v.ok_or_else(|| format!("No value found for {key} in the payload nor the formula defaults"))
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::{Payload, PointId};

    struct P(Payload);
    impl PointView for P {
        fn id(&self) -> PointId {
            PointId::Num(1)
        }
        fn payload(&self) -> Option<&Payload> {
            Some(&self.0)
        }
        fn has_vector(&self, _: &str) -> bool {
            true
        }
    }

    fn eval(formula: Value, payload: Value, scores: &[Option<f32>]) -> Result<f32, String> {
        let f = Formula::from_json(&formula, "query").map_err(|e| e.message)?;
        let p = P(payload.as_object().cloned().unwrap_or_default());
        f.score(&p, scores)
    }

    #[test]
    fn text_conditions_follow_full_text_indexes() {
        let params = qd_inference::TextIndexParams::from_schema(
            &json!({"type": "text", "stemmer": {"type": "snowball", "language": "english"}}),
        )
        .expect("params");
        let index = std::sync::Arc::new(qd_inference::TextIndex::new(params).expect("analyser"));
        let indexes = crate::filter::TextIndexes::from([("t".parse().expect("path"), index)]);
        let f = Formula::from_json(&json!({"formula": {"mult": [2, {"key": "t", "match": {"text": "run"}}]}}), "query")
            .expect("formula");
        let p = P(json!({"t": "running fast"}).as_object().cloned().unwrap_or_default());
        assert_eq!(f.score(&p, &[]), Ok(0.0), "plain word matching");
        assert_eq!(f.with_text_indexes(&indexes).score(&p, &[]), Ok(2.0), "stemmed by the index");
    }

    #[test]
    fn arithmetic_scores_and_payload() {
        let p = json!({"price": 10, "tags": ["a"], "one": [4.5]});
        let f = |e: Value| eval(json!({"formula": e}), p.clone(), &[Some(0.5), None]);
        assert_eq!(f(json!({"sum": ["$score", {"mult": [2, "price"]}]})), Ok(20.5));
        assert_eq!(f(json!("one")), Ok(4.5), "a list of one value is that value");
        assert_eq!(f(json!("$score[1]")), Ok(0.0), "missing prefetch score defaults to 0");
        assert_eq!(
            eval(json!({"formula": "$score[1]", "defaults": {"$score[1]": 7}}), p.clone(), &[None, None]),
            Ok(7.0)
        );
        assert_eq!(eval(json!({"formula": "missing", "defaults": {"missing": 3}}), p.clone(), &[]), Ok(3.0));
        assert!(f(json!("missing")).is_err());
        assert!(f(json!("tags")).is_err(), "not a number");
        assert_eq!(f(json!({"div": {"left": 1, "right": 0, "by_zero_default": 5}})), Ok(5.0));
        assert!(f(json!({"div": {"left": 1, "right": 0}})).is_err());
        assert_eq!(f(json!({"div": {"left": 0, "right": 0}})), Ok(0.0), "zero numerator short-circuits");
        assert_eq!(f(json!({"mult": [0, "missing"]})), Ok(0.0), "a zero factor short-circuits");
        assert!(f(json!({"sqrt": -1})).is_err());
        assert!(f(json!({"ln": 0})).is_err());
        assert_eq!(f(json!({"pow": {"base": 2, "exponent": 3}})), Ok(8.0));
        assert!(f(json!({"exp": 1000})).is_err());
        assert_eq!(f(json!({"max": [1, 3, 2]})), Ok(3.0));
        assert!(f(json!({"max": []})).is_err());
        assert_eq!(f(json!({"key": "price", "match": {"value": 10}})), Ok(1.0));
        assert_eq!(f(json!({"key": "price", "range": {"gt": 10}})), Ok(0.0));
    }

    #[test]
    fn vectors_are_fetched_only_for_has_vector() {
        let needs = |e: Value| Formula::from_json(&json!({ "formula": e }), "q").expect("valid").needs_vectors();
        assert!(!needs(json!({"sum": ["$score", {"key": "a", "match": {"value": 1}}]})));
        assert!(needs(json!({"sum": ["$score", {"has_vector": "dense"}]})));
        assert!(needs(
            json!({"mult": [2, {"must_not": [{"nested": {"key": "n", "filter": {"must": [{"has_vector": "v"}]}}}]}]})
        ));
    }

    #[test]
    fn decays_geo_and_dates() {
        let p = json!({"loc": {"lat": 52.52, "lon": 13.405}, "at": "2024-01-02T00:00:00Z"});
        let f = |e: Value| eval(json!({"formula": e}), p.clone(), &[]);
        assert_eq!(f(json!({"lin_decay": {"x": 1, "scale": 2}})), Ok(0.75));
        assert_eq!(f(json!({"exp_decay": {"x": 2, "target": 1, "scale": 1}})), Ok(0.5));
        assert_eq!(f(json!({"gauss_decay": {"x": 1, "scale": 1}})), Ok(0.5));
        let d =
            f(json!({"geo_distance": {"origin": {"lat": 55.7558, "lon": 37.6173}, "to": "loc"}})).expect("distance");
        assert!((d - 1_608_000.0).abs() < 10_000.0, "Moscow to Berlin {d}");
        let day = f(json!({"sum": [{"datetime_key": "at"}, {"neg": {"datetime": "2024-01-01T00:00:00Z"}}]}));
        assert_eq!(day, Ok(86_400.0));
        for bad in [
            json!({"lin_decay": {"x": 1, "midpoint": 2}}),
            json!({"exp_decay": {"x": 1, "midpoint": 1}}),
            json!({"gauss_decay": {"x": 1, "scale": 0}}),
            json!({"datetime": "not a date"}),
            json!("$score[x]"),
            json!({"div": {"left": 1}}),
        ] {
            assert!(Formula::from_json(&json!({"formula": bad}), "q").is_err(), "{bad}");
        }
    }
}
