//! Protobuf formula expressions as typed [`Formula`]s, with the same checks as JSON ones.

use qd_core::filter::GeoPoint;
use qd_core::formula::{DecayKind, Expr, Formula};
use qdrant_client::qdrant as pb;

use super::filter::condition;
use super::values::map_of;
use super::{invalid, Result};

/// A `formula` query.
pub fn formula(f: pb::Formula, what: &str) -> Result<Formula> {
    let expr = f.expression.ok_or_else(|| invalid(format!("{what}.expression: missing")))?;
    let expr = expression(expr, &format!("{what}.expression"))?;
    Formula::new(expr, map_of(f.defaults)).map_err(|e| invalid(e.message))
}

fn boxed(e: Option<Box<pb::Expression>>, what: &str) -> Result<Expr> {
    expression(*e.ok_or_else(|| invalid(format!("{what}: missing")))?, what)
}

fn list(items: Vec<pb::Expression>, what: &str) -> Result<Vec<Expr>> {
    items.into_iter().enumerate().map(|(i, e)| expression(e, &format!("{what}[{i}]"))).collect()
}

fn expression(e: pb::Expression, what: &str) -> Result<Expr> {
    use pb::expression::Variant as V;
    let checked = |r: std::result::Result<Expr, qd_core::error::ValidationError>| r.map_err(|e| invalid(e.message));
    let decay = |kind: DecayKind, d: pb::DecayParamsExpression, w: &str| -> Result<Expr> {
        let x = boxed(d.x, &format!("{w}.x"))?;
        let target = match d.target {
            Some(t) => Some(expression(*t, &format!("{w}.target"))?),
            None => None,
        };
        checked(Expr::decay(kind, x, target, d.scale.map(f64::from), d.midpoint.map(f64::from)))
    };
    let variant = e.variant.ok_or_else(|| invalid(format!("{what}: empty expression")))?;
    Ok(match variant {
        V::Constant(c) => Expr::Const(f64::from(c)),
        V::Variable(v) => checked(Expr::variable(&v, what))?,
        V::Condition(c) => checked(Expr::condition(condition(c, what)?, what))?,
        V::GeoDistance(g) => {
            let o = g.origin.ok_or_else(|| invalid(format!("{what}.geo_distance.origin: missing")))?;
            checked(Expr::geo_distance(GeoPoint { lon: o.lon, lat: o.lat }, &g.to, &format!("{what}.geo_distance")))?
        }
        V::Datetime(s) => checked(Expr::datetime(&s))?,
        V::DatetimeKey(k) => checked(Expr::datetime_key(&k, what))?,
        V::Mult(m) => Expr::Mult(list(m.mult, &format!("{what}.mult"))?),
        V::Sum(s) => Expr::Sum(list(s.sum, &format!("{what}.sum"))?),
        V::Max(m) if m.max.is_empty() => return Err(invalid("`max` needs at least one operand")),
        V::Min(m) if m.min.is_empty() => return Err(invalid("`min` needs at least one operand")),
        V::Max(m) => Expr::Max(list(m.max, &format!("{what}.max"))?),
        V::Min(m) => Expr::Min(list(m.min, &format!("{what}.min"))?),
        V::Div(d) => Expr::Div {
            left: Box::new(boxed(d.left, &format!("{what}.div.left"))?),
            right: Box::new(boxed(d.right, &format!("{what}.div.right"))?),
            by_zero_default: d.by_zero_default.map(f64::from),
        },
        V::Pow(p) => Expr::Pow {
            base: Box::new(boxed(p.base, &format!("{what}.pow.base"))?),
            exponent: Box::new(boxed(p.exponent, &format!("{what}.pow.exponent"))?),
        },
        V::Neg(e) => Expr::Neg(Box::new(expression(*e, &format!("{what}.neg"))?)),
        V::Abs(e) => Expr::Abs(Box::new(expression(*e, &format!("{what}.abs"))?)),
        V::Sqrt(e) => Expr::Sqrt(Box::new(expression(*e, &format!("{what}.sqrt"))?)),
        V::Exp(e) => Expr::Exp(Box::new(expression(*e, &format!("{what}.exp"))?)),
        V::Log10(e) => Expr::Log10(Box::new(expression(*e, &format!("{what}.log10"))?)),
        V::Ln(e) => Expr::Ln(Box::new(expression(*e, &format!("{what}.ln"))?)),
        V::Acosh(e) => Expr::Acosh(Box::new(expression(*e, &format!("{what}.acosh"))?)),
        V::LinDecay(d) => decay(DecayKind::Lin, *d, &format!("{what}.lin_decay"))?,
        V::ExpDecay(d) => decay(DecayKind::Exp, *d, &format!("{what}.exp_decay"))?,
        V::GaussDecay(d) => decay(DecayKind::Gauss, *d, &format!("{what}.gauss_decay"))?,
    })
}
