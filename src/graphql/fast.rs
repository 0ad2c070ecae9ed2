//! Answers for the two documents every client sends over and over, written
//! without async-graphql's executor (issue 21): `viewer` (the token check
//! of an application) and `sessions` (the settings page).
//!
//! A document gets a [`Plan`] when it is one query operation, without
//! variables, fragments, directives, aliases or arguments, whose only root
//! field is `viewer` or `sessions` and which selects only fields listed
//! here, each once. Anything else has no plan and runs on the executor, as
//! does a document with a plan until it has passed async-graphql's full
//! validation once on the executor (see
//! [`super::documents::Parsed::fast_plan`]), and every request that is
//! not one operation from a signed-in user.
//!
//! A plan answers with the bytes the executor would: the same service
//! call, the same conversions into the schema's types ([`Session`],
//! [`User`], [`Viewer`]), scalars and enums written through their own
//! `to_value`, fields in the order selected. Whatever the plan does not
//! cover at run time (a session opened by impersonation, whose
//! `impersonator` needs the account loader; any error) makes it give up
//! (`None`) before anything is written, and the executor answers the
//! request instead. `tests/api/fast_path.rs` runs every plan's documents
//! both ways and compares the bytes.

use async_graphql::{
    InputType, ScalarType,
    parser::types::{
        DocumentOperations, ExecutableDocument, OperationType, Selection, SelectionSet,
    },
};
use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::{
    session::{Session, SessionList, Viewer},
    user::User,
};
use crate::{
    auth::{Caller, RequestMeta},
    service::{device, session as sessions},
    state::AppState,
};

/// What a document asks for, when it is one this module answers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Plan {
    /// `{ viewer { … } }`
    Viewer(Vec<ViewerField>),
    /// `{ sessions { … } }`: the caller's own active sessions.
    Sessions(Vec<ListField>),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ViewerField {
    User(Vec<UserField>),
    Session(Vec<SessionField>),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ListField {
    Sessions(Vec<SessionField>),
    Count,
    ActiveCount,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UserField {
    Id,
    Email,
    Name,
    Role,
    CreatedAt,
    ExternalId,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SessionField {
    Id,
    SessionToken,
    UserId,
    CreatedAt,
    Expires,
    LastActiveAt,
    RevokedAt,
    IpAddress,
    UserAgent,
    ImpersonationReason,
    EndReason,
    EndedAt,
    IsExpired,
    IsActive,
    IsCurrent,
    Device,
    /// Null unless the session was opened by impersonation; then the plan
    /// gives up (the account is the loader's business).
    Impersonator(Vec<UserField>),
}

impl Plan {
    /// The plan of `document`, if it has one (see the module's comment).
    pub fn of(document: &ExecutableDocument) -> Option<Plan> {
        if !document.fragments.is_empty() {
            return None;
        }
        // A named operation comes as `Multiple`, even alone.
        let operation = match &document.operations {
            DocumentOperations::Single(operation) => operation,
            DocumentOperations::Multiple(operations) if operations.len() == 1 => {
                operations.values().next()?
            }
            DocumentOperations::Multiple(_) => return None,
        };
        let operation = &operation.node;
        if operation.ty != OperationType::Query
            || !operation.variable_definitions.is_empty()
            || !operation.directives.is_empty()
        {
            return None;
        }
        let mut root = fields(&operation.selection_set.node)?;
        let (name, selection) = root.pop().filter(|_| root.is_empty())?;
        match name {
            "viewer" => Some(Plan::Viewer(object(selection?, |name, sub| {
                Some(match name {
                    "user" => ViewerField::User(user_fields(sub?)?),
                    "session" => ViewerField::Session(session_fields(sub?)?),
                    _ => return None,
                })
            })?)),
            "sessions" => Some(Plan::Sessions(object(selection?, |name, sub| {
                Some(match (name, sub) {
                    ("sessions", Some(sub)) => ListField::Sessions(session_fields(sub)?),
                    ("count", None) => ListField::Count,
                    ("activeCount", None) => ListField::ActiveCount,
                    _ => return None,
                })
            })?)),
            _ => None,
        }
    }
}

/// The fields of a selection set with their own selections, if every item
/// is a plain field (no alias, argument or directive; no fragment) and no
/// name comes twice.
fn fields(set: &SelectionSet) -> Option<Vec<(&str, Option<&SelectionSet>)>> {
    let mut out: Vec<(&str, Option<&SelectionSet>)> = Vec::with_capacity(set.items.len());
    for item in &set.items {
        let Selection::Field(field) = &item.node else {
            return None;
        };
        let field = &field.node;
        if field.alias.is_some() || !field.arguments.is_empty() || !field.directives.is_empty() {
            return None;
        }
        let name = field.name.node.as_str();
        if out.iter().any(|(seen, _)| *seen == name) {
            return None;
        }
        let selection = &field.selection_set.node;
        out.push((name, (!selection.items.is_empty()).then_some(selection)));
    }
    (!out.is_empty()).then_some(out)
}

fn object<T>(
    set: &SelectionSet,
    field: impl Fn(&str, Option<&SelectionSet>) -> Option<T>,
) -> Option<Vec<T>> {
    fields(set)?
        .into_iter()
        .map(|(name, sub)| field(name, sub))
        .collect()
}

fn user_fields(set: &SelectionSet) -> Option<Vec<UserField>> {
    object(set, |name, sub| {
        if sub.is_some() {
            return None;
        }
        Some(match name {
            "id" => UserField::Id,
            "email" => UserField::Email,
            "name" => UserField::Name,
            "role" => UserField::Role,
            "createdAt" => UserField::CreatedAt,
            "externalId" => UserField::ExternalId,
            _ => return None,
        })
    })
}

fn session_fields(set: &SelectionSet) -> Option<Vec<SessionField>> {
    object(set, |name, sub| {
        if name == "impersonator" {
            return Some(SessionField::Impersonator(user_fields(sub?)?));
        }
        if sub.is_some() {
            return None;
        }
        Some(match name {
            "id" => SessionField::Id,
            "sessionToken" => SessionField::SessionToken,
            "userId" => SessionField::UserId,
            "createdAt" => SessionField::CreatedAt,
            "expires" => SessionField::Expires,
            "lastActiveAt" => SessionField::LastActiveAt,
            "revokedAt" => SessionField::RevokedAt,
            "ipAddress" => SessionField::IpAddress,
            "userAgent" => SessionField::UserAgent,
            "impersonationReason" => SessionField::ImpersonationReason,
            "endReason" => SessionField::EndReason,
            "endedAt" => SessionField::EndedAt,
            "isExpired" => SessionField::IsExpired,
            "isActive" => SessionField::IsActive,
            "isCurrent" => SessionField::IsCurrent,
            "device" => SessionField::Device,
            _ => return None,
        })
    })
}

/// The response body (`{"data":{…}}`) for `caller`, or `None` when the
/// executor must answer (see the module's comment). Nothing is written,
/// audited or counted before the answer is complete.
pub async fn run(
    plan: &Plan,
    app: &AppState,
    caller: &Caller,
    meta: &RequestMeta,
) -> Option<Vec<u8>> {
    let mut out = Out(Vec::with_capacity(512));
    match plan {
        Plan::Viewer(fields) => {
            // As the `viewer` resolver builds it.
            let viewer = Viewer {
                user: caller.user.clone().into(),
                session: sessions::as_seen_by(caller, caller.session.clone()).into(),
            };
            out.raw("{\"data\":{\"viewer\":{");
            for (i, field) in fields.iter().enumerate() {
                out.comma(i);
                match field {
                    ViewerField::User(fields) => {
                        out.key("user");
                        out.user(&viewer.user, fields);
                    }
                    ViewerField::Session(fields) => {
                        out.key("session");
                        out.session(&viewer.session, fields, caller)?;
                    }
                }
            }
            out.raw("}}}");
        }
        Plan::Sessions(fields) => {
            // As the `sessions` resolver does with no arguments.
            // Boxed: the read's future is kilobytes, and inline it would
            // make this one (and every request's handler future around
            // it, `viewer`'s too) that large, copied at each move.
            let listed = Box::pin(sessions::list(&app.db, caller, meta, None, false))
                .await
                .ok()?;
            let list = SessionList::new(listed);
            out.raw("{\"data\":{\"sessions\":{");
            for (i, field) in fields.iter().enumerate() {
                out.comma(i);
                match field {
                    ListField::Count => {
                        out.key("count");
                        out.number(list.count);
                    }
                    ListField::ActiveCount => {
                        out.key("activeCount");
                        out.number(list.active_count);
                    }
                    ListField::Sessions(fields) => {
                        out.key("sessions");
                        out.raw("[");
                        for (j, session) in list.sessions.iter().enumerate() {
                            out.comma(j);
                            out.session(session, fields, caller)?;
                        }
                        out.raw("]");
                    }
                }
            }
            out.raw("}}}");
        }
    }
    Some(out.0)
}

/// `at` as a JSON string, as the `DateTime` scalar's value
/// (`to_rfc3339()`: `2026-12-01T20:00:00.123456+00:00`, the fraction in 0,
/// 3, 6 or 9 digits) comes out of serde_json, without the `Value` and the
/// `String` on the way. `false`, with nothing written, for a year outside
/// 0–9999 or a leap second, which the scalar writes as it does.
fn write_time(out: &mut Vec<u8>, at: &DateTime<Utc>) -> bool {
    use chrono::{Datelike, Timelike};
    let (year, nano) = (at.year(), at.nanosecond());
    if !(0..=9999).contains(&year) || nano >= 1_000_000_000 {
        return false;
    }
    let two = |out: &mut Vec<u8>, n: u32| {
        out.extend_from_slice(&[b'0' + (n / 10) as u8, b'0' + (n % 10) as u8])
    };
    out.push(b'"');
    let year = year as u32;
    two(out, year / 100);
    two(out, year % 100);
    out.push(b'-');
    two(out, at.month());
    out.push(b'-');
    two(out, at.day());
    out.push(b'T');
    two(out, at.hour());
    out.push(b':');
    two(out, at.minute());
    out.push(b':');
    two(out, at.second());
    let (digits, fraction) = if nano == 0 {
        (0, 0)
    } else if nano % 1_000_000 == 0 {
        (3, nano / 1_000_000)
    } else if nano % 1_000 == 0 {
        (6, nano / 1_000)
    } else {
        (9, nano)
    };
    if digits > 0 {
        out.push(b'.');
        let start = out.len();
        out.resize(start + digits, b'0');
        let mut rest = fraction;
        for slot in out[start..].iter_mut().rev() {
            *slot = b'0' + (rest % 10) as u8;
            rest /= 10;
        }
    }
    out.extend_from_slice(b"+00:00\"");
    true
}

/// JSON as serde_json writes async-graphql's values: compact, strings
/// escaped by serde_json itself.
struct Out(Vec<u8>);

impl Out {
    fn raw(&mut self, s: &str) {
        self.0.extend_from_slice(s.as_bytes());
    }

    fn comma(&mut self, index: usize) {
        if index > 0 {
            self.0.push(b',');
        }
    }

    /// A field name: GraphQL names need no escaping.
    fn key(&mut self, name: &str) {
        self.0.push(b'"');
        self.raw(name);
        self.raw("\":");
    }

    /// As serde_json writes a string. Most (addresses, User-Agents, names)
    /// hold nothing it escapes (controls, `"` and `\`; it leaves the rest
    /// of UTF-8 as it is), and those are copied in one go.
    fn string(&mut self, s: &str) {
        if s.bytes().all(|b| b >= 0x20 && b != b'"' && b != b'\\') {
            self.0.reserve(s.len() + 2);
            self.0.push(b'"');
            self.raw(s);
            self.0.push(b'"');
        } else {
            serde_json::to_writer(&mut self.0, s).expect("writing to a Vec cannot fail");
        }
    }

    fn opt_string(&mut self, s: Option<&str>) {
        match s {
            Some(s) => self.string(s),
            None => self.raw("null"),
        }
    }

    fn value(&mut self, value: &async_graphql::Value) {
        serde_json::to_writer(&mut self.0, value).expect("writing to a Vec cannot fail");
    }

    fn number(&mut self, n: i32) {
        serde_json::to_writer(&mut self.0, &n).expect("writing to a Vec cannot fail");
    }

    fn bool(&mut self, b: bool) {
        self.raw(if b { "true" } else { "false" });
    }

    /// As the `UUID` scalar writes it (`to_string()`: lower-case and
    /// hyphenated, nothing to escape), without the string and the `Value`.
    fn uuid(&mut self, id: &Uuid) {
        let mut text = [0u8; uuid::fmt::Hyphenated::LENGTH];
        self.0.push(b'"');
        self.raw(id.hyphenated().encode_lower(&mut text));
        self.0.push(b'"');
    }

    fn time(&mut self, at: &DateTime<Utc>) {
        if !write_time(&mut self.0, at) {
            self.value(&ScalarType::to_value(at));
        }
    }

    fn opt_time(&mut self, at: Option<&DateTime<Utc>>) {
        match at {
            Some(at) => self.time(at),
            None => self.raw("null"),
        }
    }

    fn user(&mut self, user: &User, fields: &[UserField]) {
        self.raw("{");
        for (i, field) in fields.iter().enumerate() {
            self.comma(i);
            match field {
                UserField::Id => {
                    self.key("id");
                    self.uuid(&user.id);
                }
                UserField::Email => {
                    self.key("email");
                    self.string(&user.email);
                }
                UserField::Name => {
                    self.key("name");
                    self.string(&user.name);
                }
                UserField::Role => {
                    self.key("role");
                    self.value(&InputType::to_value(&user.role));
                }
                UserField::CreatedAt => {
                    self.key("createdAt");
                    self.time(&user.created_at);
                }
                UserField::ExternalId => {
                    self.key("externalId");
                    self.opt_string(user.external_id.as_deref());
                }
            }
        }
        self.raw("}");
    }

    /// `None` when a field needs what only the executor has.
    fn session(
        &mut self,
        session: &Session,
        fields: &[SessionField],
        caller: &Caller,
    ) -> Option<()> {
        self.raw("{");
        for (i, field) in fields.iter().enumerate() {
            self.comma(i);
            match field {
                SessionField::Id => {
                    self.key("id");
                    self.uuid(&session.id);
                }
                SessionField::SessionToken => {
                    self.key("sessionToken");
                    self.string(&session.session_token);
                }
                SessionField::UserId => {
                    self.key("userId");
                    self.uuid(&session.user_id);
                }
                SessionField::CreatedAt => {
                    self.key("createdAt");
                    self.time(&session.created_at);
                }
                SessionField::Expires => {
                    self.key("expires");
                    self.time(&session.expires);
                }
                SessionField::LastActiveAt => {
                    self.key("lastActiveAt");
                    self.time(&session.last_active_at);
                }
                SessionField::RevokedAt => {
                    self.key("revokedAt");
                    self.opt_time(session.revoked_at.as_ref());
                }
                SessionField::IpAddress => {
                    self.key("ipAddress");
                    self.opt_string(session.ip_address.as_deref());
                }
                SessionField::UserAgent => {
                    self.key("userAgent");
                    self.opt_string(session.user_agent.as_deref());
                }
                SessionField::ImpersonationReason => {
                    self.key("impersonationReason");
                    self.opt_string(session.impersonation_reason.as_deref());
                }
                SessionField::EndReason => {
                    self.key("endReason");
                    match &session.end_reason {
                        Some(reason) => self.value(&InputType::to_value(reason)),
                        None => self.raw("null"),
                    }
                }
                SessionField::EndedAt => {
                    self.key("endedAt");
                    self.opt_time(session.ended_at.as_ref());
                }
                SessionField::IsExpired => {
                    self.key("isExpired");
                    self.bool(session.expires <= Utc::now());
                }
                SessionField::IsActive => {
                    self.key("isActive");
                    self.bool(session.revoked_at.is_none() && session.expires > Utc::now());
                }
                SessionField::IsCurrent => {
                    self.key("isCurrent");
                    self.bool(caller.session.id == session.id);
                }
                SessionField::Device => {
                    self.key("device");
                    let label = session.user_agent.as_deref().and_then(device::label);
                    self.opt_string(label.as_deref());
                }
                SessionField::Impersonator(_) => {
                    if session.impersonator_id.is_some() {
                        return None;
                    }
                    self.key("impersonator");
                    self.raw("null");
                }
            }
        }
        self.raw("}");
        Some(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use async_graphql::parser::parse_query;

    fn plan(query: &str) -> Option<Plan> {
        Plan::of(&parse_query(query).unwrap())
    }

    #[test]
    fn strings_are_written_as_serde_json_writes_them() {
        let mut samples: Vec<String> = [
            "",
            "plain",
            "Mozilla/5.0 (X11; Linux x86_64; rv:131.0) Gecko/20100101 Firefox/131.0",
            "quote \" inside",
            "back\\slash",
            "tab\there",
            "nul\0",
            "del\u{7f} and é, 漢字, \u{2028}\u{2029}, 😀",
        ]
        .into_iter()
        .map(String::from)
        .collect();
        samples.extend((0u8..=0x7f).map(|b| format!("a{}b", b as char)));
        for sample in &samples {
            let mut fast = Out(Vec::new());
            fast.string(sample);
            assert_eq!(fast.0, serde_json::to_vec(sample).unwrap(), "{sample:?}");
        }
    }

    #[test]
    fn uuids_are_written_as_the_scalar_writes_them() {
        for id in [Uuid::nil(), Uuid::max(), Uuid::new_v4(), Uuid::now_v7()] {
            let mut fast = Out(Vec::new());
            fast.uuid(&id);
            let general = serde_json::to_vec(&ScalarType::to_value(&id)).unwrap();
            assert_eq!(fast.0, general, "{id}");
        }
    }

    #[test]
    fn times_are_written_as_the_scalar_writes_them() {
        use chrono::{Duration, TimeZone};
        let check = |at: DateTime<Utc>| {
            let mut fast = Vec::new();
            assert!(write_time(&mut fast, &at), "{at:?}");
            let general = serde_json::to_vec(&ScalarType::to_value(&at)).unwrap();
            assert_eq!(
                String::from_utf8(fast).unwrap(),
                String::from_utf8(general).unwrap()
            );
        };
        let mut at = Utc.with_ymd_and_hms(0, 1, 1, 0, 0, 0).unwrap();
        let mut nanos: i64 = 7;
        for i in 0..20_000i64 {
            at += Duration::seconds(86_400 * 181 + 3_601 * (i % 24) + i % 60);
            nanos = nanos
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407)
                .rem_euclid(1_000_000_000);
            for scaled in [
                0,
                nanos / 1_000_000 * 1_000_000,
                nanos / 1_000 * 1_000,
                nanos,
            ] {
                check(at + Duration::nanoseconds(scaled));
            }
        }
        check(Utc.with_ymd_and_hms(9999, 12, 31, 23, 59, 59).unwrap());
        check(Utc.with_ymd_and_hms(1, 2, 3, 4, 5, 6).unwrap() + Duration::nanoseconds(1));
        check(Utc.with_ymd_and_hms(2026, 12, 1, 20, 0, 0).unwrap() + Duration::microseconds(10));
        let far = Utc.with_ymd_and_hms(10000, 1, 1, 0, 0, 0).unwrap();
        let mut out = Vec::new();
        assert!(!write_time(&mut out, &far) && out.is_empty());
        let mut fallback = Out(Vec::new());
        fallback.time(&far);
        assert_eq!(
            fallback.0,
            serde_json::to_vec(&ScalarType::to_value(&far)).unwrap()
        );
    }

    #[test]
    fn the_documents_of_the_settings_page_and_the_token_check_have_plans() {
        assert_eq!(
            plan("query { viewer { user { id email name role } session { id expires } } }"),
            Some(Plan::Viewer(vec![
                ViewerField::User(vec![
                    UserField::Id,
                    UserField::Email,
                    UserField::Name,
                    UserField::Role
                ]),
                ViewerField::Session(vec![SessionField::Id, SessionField::Expires]),
            ]))
        );
        assert!(
            plan("query SettingsSessions { sessions { count activeCount sessions { id sessionToken device ipAddress userAgent createdAt lastActiveAt expires isCurrent isActive impersonationReason impersonator { name email } } } }")
                .is_some()
        );
        assert!(plan("{ sessions { sessions { id } } }").is_some());
    }

    #[test]
    fn anything_beyond_plain_known_fields_has_no_plan() {
        let cases = [
            (
                "{ viewer { user { id } } sessions { count } }",
                "two root fields",
            ),
            ("{ me: viewer { user { id } } }", "an alias"),
            ("{ viewer { user { me: id } } }", "an alias below"),
            ("{ viewer { user { id id } } }", "a field twice"),
            (
                "{ viewer { user { id } user { email } } }",
                "an object twice",
            ),
            ("{ viewer { __typename user { id } } }", "__typename"),
            (
                "{ viewer { user { id canImpersonate } } }",
                "a field not covered",
            ),
            ("{ viewer { can { listUsers } } }", "an object not covered"),
            (
                "{ viewer { impersonator { id } } }",
                "the viewer's impersonator",
            ),
            ("{ viewer { user } }", "an object without a selection"),
            (
                "{ viewer { user { id { x } } } }",
                "a scalar with a selection",
            ),
            (
                "{ sessions(includeExpired: true) { count } }",
                "an argument",
            ),
            ("{ sessions(userId: null) { count } }", "another argument"),
            (
                "query($x: Boolean!) { sessions(includeExpired: $x) { count } }",
                "variables",
            ),
            (
                "{ viewer @include(if: true) { user { id } } }",
                "a directive",
            ),
            (
                "{ viewer { user { id @skip(if: false) } } }",
                "a directive below",
            ),
            (
                "query @x { viewer { user { id } } }",
                "an operation directive",
            ),
            (
                "{ ...F } fragment F on QueryRoot { viewer { user { id } } }",
                "a fragment",
            ),
            (
                "{ viewer { ... on Viewer { user { id } } } }",
                "an inline fragment",
            ),
            ("mutation { viewer { user { id } } }", "a mutation"),
            ("subscription { viewer { user { id } } }", "a subscription"),
            (
                "query A { viewer { user { id } } } query B { viewer { user { id } } }",
                "two operations",
            ),
            (
                "{ sessions { sessions { user { id } } } }",
                "a session's user",
            ),
            ("{ sessions { sessions { canRevoke } } }", "canRevoke"),
            (
                "{ sessions { sessions { revokedBy { id } } } }",
                "revokedBy",
            ),
            (
                "{ sessions { sessions { impersonator { id canImpersonate } } } }",
                "impersonator's rights",
            ),
            ("{ session(id: \"x\") { id } }", "another root field"),
        ];
        for (query, why) in cases {
            assert_eq!(plan(query), None, "{why}: {query}");
        }
    }
}
