//! Who may do what: the rights matrix of the design, in one place, as
//! pure functions of the caller and the target. The GraphQL guards
//! ([`crate::graphql::guards`]) apply these rules; how a refusal is
//! answered and audited is [`super::denials`]'s (which uses these, as the
//! audit log's reading rules do: so the rules import neither).

use entity::user::{self, Role};
use uuid::Uuid;

use crate::auth::Caller;

/// What a caller attempted, as written into denial events.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    ViewSessions,
    RevokeSessions,
    ReadAudit,
    VerifyAudit,
    Impersonate,
    /// Finding accounts by email or name.
    ListUsers,
    /// Account-wide actions an impersonation session may not take.
    Sensitive,
    /// Making, listing and revoking API keys.
    ManageApiKeys,
    /// Managing webhook endpoints.
    ManageWebhooks,
    /// Reading Shared Signals streams (`ssfStreams`).
    ManageSsf,
    /// An operation for signed-in users, attempted with an API key.
    UserOperation,
    /// An operation for API keys, attempted without the scope it needs.
    KeyOperation,
    /// Reading one account (`user`).
    ViewUser,
    /// `createUser`.
    CreateUser,
    /// `updateUser`.
    UpdateUser,
    /// `setUserRole`.
    SetUserRole,
    /// `disableUser`.
    DisableUser,
    /// `enableUser`.
    EnableUser,
    /// `deleteUser`.
    DeleteUser,
    /// `setPassword`: an admin resetting someone's password.
    ResetPassword,
}

impl Action {
    pub fn as_str(self) -> &'static str {
        match self {
            Action::ViewSessions => "sessions.view",
            Action::RevokeSessions => "sessions.revoke",
            Action::ReadAudit => "audit.read",
            Action::VerifyAudit => "audit.verify",
            Action::Impersonate => "impersonation.start",
            Action::ListUsers => "users.list",
            Action::Sensitive => "account.sensitive",
            Action::ManageApiKeys => "api_keys.manage",
            Action::ManageWebhooks => "webhooks.manage",
            Action::ManageSsf => "ssf.manage",
            Action::UserOperation => "user.operation",
            Action::KeyOperation => "api_key.operation",
            Action::ViewUser => "user.view",
            Action::CreateUser => "user.create",
            Action::UpdateUser => "user.update",
            Action::SetUserRole => "user.set_role",
            Action::DisableUser => "user.disable",
            Action::EnableUser => "user.enable",
            Action::DeleteUser => "user.delete",
            Action::ResetPassword => "user.reset_password",
        }
    }
}

/// May `caller` list, view or revoke the sessions of `owner`? `Err` holds
/// the reason, safe to show.
///
/// Everyone manages their own; an impersonation session acts only as its
/// target; otherwise an admin manages users' and admins' sessions and an
/// owner everyone's.
pub fn may_manage_sessions(caller: &Caller, owner: &user::Model) -> Result<(), &'static str> {
    may_manage_sessions_of(caller, owner.id, owner.role)
}

/// [`may_manage_sessions`] for the account `id` holding `role`, for callers
/// that hold no model (the schema's `Session.canRevoke`).
pub fn may_manage_sessions_of(caller: &Caller, id: Uuid, role: Role) -> Result<(), &'static str> {
    if id == caller.user.id {
        return Ok(());
    }
    may_manage_others(caller)?;
    match (caller.user.role, role) {
        (Role::Owner, _) | (Role::Admin, Role::User | Role::Admin) => Ok(()),
        (Role::Admin, Role::Owner) => Err("admins cannot act on an owner's sessions"),
        (Role::User, _) => Err(OWN_ONLY),
    }
}

/// Why a user is refused acting on someone else's sessions.
pub const OWN_ONLY: &str = "you can act only on your own sessions";

/// Can `caller` act on anyone's sessions but their own at all? A plain
/// user cannot, nor can any impersonation session, whoever the other is;
/// so they are refused before the other account is even looked up.
pub fn may_manage_others(caller: &Caller) -> Result<(), &'static str> {
    if caller.is_impersonation() {
        return Err(
            "an impersonation session can act only on the impersonated user's own sessions",
        );
    }
    match caller.user.role {
        Role::User => Err(OWN_ONLY),
        Role::Admin | Role::Owner => Ok(()),
    }
}

/// May `caller` read every audit event (not only those about themselves)?
pub fn may_read_all_audit(caller: &Caller) -> bool {
    may_manage_others(caller).is_ok()
}

/// May `caller` see the name and email of the account `id` (with `role`)
/// where an audit event names it? Those who read all events see everyone;
/// a user sees themselves and the admins and owners who acted on their
/// account (as `Session.impersonator` shows them), never another user.
pub fn may_see_account(caller: &Caller, id: Uuid, role: Role) -> bool {
    may_read_all_audit(caller) || id == caller.user.id || role != Role::User
}

/// The role finding accounts (`users`) needs.
pub const LIST_USERS_ROLE: Role = Role::Admin;
/// The role walking the audit hash chain (`auditChain`) needs.
pub const VERIFY_AUDIT_ROLE: Role = Role::Owner;

/// The role making, listing and revoking API keys needs: a key acts for
/// the whole installation, so only owners hand them out.
pub const MANAGE_API_KEYS_ROLE: Role = Role::Owner;

/// The role managing webhook endpoints needs (API keys need the scope
/// `webhooks:manage`): an endpoint receives every session event of the
/// installation.
pub const MANAGE_WEBHOOKS_ROLE: Role = Role::Owner;

/// May `caller` find accounts by email or name (`users`)?
pub fn may_list_users(caller: &Caller) -> bool {
    has_role(caller, LIST_USERS_ROLE)
}

/// May `caller` manage webhook endpoints (the rule the webhook operations'
/// guard applies to users)?
pub fn may_manage_webhooks(caller: &Caller) -> bool {
    has_role(caller, MANAGE_WEBHOOKS_ROLE)
}

/// May `caller` walk the audit hash chain (`auditChain`)?
pub fn may_verify_audit(caller: &Caller) -> bool {
    has_role(caller, VERIFY_AUDIT_ROLE)
}

/// Does `caller` hold at least `role`? An impersonation session never does
/// beyond a user's rights.
pub fn has_role(caller: &Caller, role: Role) -> bool {
    let rank = |r: Role| match r {
        Role::User => 0,
        Role::Admin => 1,
        Role::Owner => 2,
    };
    let held = if caller.is_impersonation() {
        Role::User
    } else {
        caller.user.role
    };
    rank(held) >= rank(role)
}

/// May `caller` open an impersonation session as `target`? Admins may
/// impersonate users; owners users and admins; nobody an owner or
/// themselves, and never from an impersonation session.
pub fn may_impersonate(caller: &Caller, target: &user::Model) -> Result<(), &'static str> {
    may_impersonate_account(caller, target.id, target.role)
}

/// [`may_impersonate`] for the account `id` holding `role`, for callers
/// that hold no model (the schema's `User.canImpersonate`).
pub fn may_impersonate_account(caller: &Caller, id: Uuid, role: Role) -> Result<(), &'static str> {
    may_start_impersonating(caller)?;
    if id == caller.user.id {
        return Err("you cannot impersonate yourself");
    }
    may_impersonate_role(caller.user.role, role)
}

/// The checks that need no target: refused before looking anyone up.
pub fn may_start_impersonating(caller: &Caller) -> Result<(), &'static str> {
    if caller.is_impersonation() {
        return Err("an impersonation session cannot start another impersonation");
    }
    if caller.user.role == Role::User {
        return Err("only admins and owners can impersonate");
    }
    Ok(())
}

/// The role part of [`may_impersonate`]; also re-checked on every request
/// of an impersonation session, so it ends when the admin loses the role.
pub fn may_impersonate_role(admin: Role, target: Role) -> Result<(), &'static str> {
    match (admin, target) {
        (_, Role::Owner) => Err("nobody can impersonate an owner"),
        (Role::Owner, _) | (Role::Admin, Role::User) => Ok(()),
        (Role::Admin, Role::Admin) => Err("admins can impersonate users only"),
        (Role::User, _) => Err("only admins and owners can impersonate"),
    }
}

/// May `caller` revoke a session of `owner` that `impersonator` opened by
/// impersonation (`None` for an ordinary session)? As for any session of
/// `owner`, and for an impersonation session the caller needs rights over
/// the impersonator too: an admin cannot end an owner's impersonation of
/// another admin. The impersonated user may always end it, and the
/// impersonator too. (Revoking from an impersonation session is refused
/// before this, see [`not_impersonating`].)
pub fn may_revoke_session(
    caller: &Caller,
    owner: &user::Model,
    impersonator: Option<&user::Model>,
) -> Result<(), &'static str> {
    may_revoke_session_of(
        caller,
        (owner.id, owner.role),
        impersonator.map(|admin| (admin.id, admin.role)),
    )
}

/// [`may_revoke_session`] for accounts given as (id, role), for callers
/// that hold no model.
pub fn may_revoke_session_of(
    caller: &Caller,
    (owner_id, owner_role): (Uuid, Role),
    impersonator: Option<(Uuid, Role)>,
) -> Result<(), &'static str> {
    may_manage_sessions_of(caller, owner_id, owner_role)?;
    match impersonator {
        Some((admin_id, admin_role)) if owner_id != caller.user.id => may_manage_sessions_of(
            caller, admin_id, admin_role,
        )
        .map_err(
            |_| "this impersonation session was opened by someone whose sessions you cannot act on",
        ),
        _ => Ok(()),
    }
}

/// May `caller` revoke the session `session_id` of `owner` (as (id, role)),
/// opened by `impersonator` (`None` for an ordinary session, or when that
/// account is gone)? The whole rule of `revokeSession`, for its guard and
/// for `Session.canRevoke`: any session may end itself; an impersonation
/// session may end no other (not even another of its user's, see
/// [`not_impersonating`]); otherwise [`may_revoke_session_of`].
pub fn may_revoke(
    caller: &Caller,
    session_id: Uuid,
    owner: (Uuid, Role),
    impersonator: Option<(Uuid, Role)>,
) -> Result<(), &'static str> {
    if session_id == caller.session.id {
        return Ok(());
    }
    not_impersonating(caller)?;
    may_revoke_session_of(caller, owner, impersonator)
}

/// May `caller` end all of a user's sessions at once (`revokeSessions`),
/// as far as the caller's session goes? Not from an impersonation session
/// (see [`not_impersonating`]); whose sessions is [`may_manage_sessions`].
pub fn may_revoke_all(caller: &Caller) -> bool {
    not_impersonating(caller).is_ok()
}

/// Refuses account-wide actions from an impersonation session.
pub fn not_impersonating(caller: &Caller) -> Result<(), &'static str> {
    if caller.is_impersonation() {
        return Err("this action is not allowed from an impersonation session");
    }
    Ok(())
}

/// May `caller` read the account `id` (`user`)? Everyone their own;
/// admins and owners every account (as `users` lists them); an
/// impersonation session only its user's.
pub fn may_view_user(caller: &Caller, id: Uuid) -> Result<(), &'static str> {
    if id == caller.user.id {
        return Ok(());
    }
    may_manage_others(caller).map_err(|_| "you can read only your own account")
}

/// Which accounts a role manages: admins users', owners everyone's.
pub fn may_manage_role(manager: Role, account: Role) -> Result<(), &'static str> {
    match (manager, account) {
        (Role::Owner, _) | (Role::Admin, Role::User) => Ok(()),
        (Role::Admin, _) => Err("admins manage users' accounts only"),
        (Role::User, _) => Err(MANAGERS_ONLY),
    }
}

/// Why a user is refused managing accounts.
pub const MANAGERS_ONLY: &str = "only admins and owners manage accounts";

/// The role managing accounts (`createUser` and the rest) needs.
pub const MANAGE_USERS_ROLE: Role = Role::Admin;

/// Can `caller` manage any account at all? Not a plain user, nor any
/// impersonation session: refused before the account is looked up.
pub fn may_manage_accounts(caller: &Caller) -> Result<(), &'static str> {
    if caller.is_impersonation() {
        return Err("accounts cannot be managed from an impersonation session");
    }
    match caller.user.role {
        Role::User => Err(MANAGERS_ONLY),
        Role::Admin | Role::Owner => Ok(()),
    }
}

/// The role changing roles (`setUserRole`) needs.
pub const SET_ROLE_ROLE: Role = Role::Owner;

/// May `caller` take `action` (one of the account actions: update, set
/// the role, disable, enable, delete, reset the password) on the account
/// `id` holding `role`? Admins manage users, owners everyone; roles are
/// changed by owners only; nobody disables, deletes, demotes or resets
/// the password of their own account (`changePassword` is for that);
/// never from an impersonation session. (The last owner is the service's
/// to protect: it needs the other owners, read under lock.)
pub fn may_manage_user(
    caller: &Caller,
    action: Action,
    id: Uuid,
    role: Role,
) -> Result<(), &'static str> {
    may_manage_accounts(caller)?;
    if action == Action::SetUserRole && caller.user.role != SET_ROLE_ROLE {
        return Err("only owners change roles");
    }
    if id == caller.user.id {
        match action {
            Action::DisableUser => return Err("you cannot disable your own account"),
            Action::DeleteUser => return Err("you cannot delete your own account"),
            Action::SetUserRole => return Err("you cannot change your own role"),
            Action::ResetPassword => {
                return Err("use changePassword to change your own password");
            }
            Action::EnableUser => return Err("you cannot enable your own account"),
            _ => {}
        }
    }
    may_manage_role(caller.user.role, role)
}

/// May `caller` give an account `role`, made new (`createUser`) or
/// changed to (`setUserRole`, checked with [`may_manage_user`] first)?
/// Admins make users; owners any role.
pub fn may_grant_role(caller: &Caller, role: Role) -> Result<(), &'static str> {
    may_manage_accounts(caller)?;
    may_manage_role(caller.user.role, role).map_err(|reason| match caller.user.role {
        Role::Admin => "admins make users' accounts only",
        _ => reason,
    })
}

/// Accounts and callers for the unit tests of the rules and of the
/// refusals.
#[cfg(test)]
pub(crate) mod fixtures {
    use super::*;
    use entity::session;

    pub fn user(role: Role) -> user::Model {
        user::Model::new(
            Uuid::new_v4(),
            format!("{}@example.com", role.as_str()),
            "x".into(),
            role,
            String::new(),
            chrono::Utc::now(),
        )
    }

    pub fn caller(user: &user::Model, impersonator: Option<Uuid>) -> Caller {
        let now = chrono::Utc::now();
        Caller {
            user: user.clone(),
            session: session::Model {
                id: Uuid::new_v4(),
                token_hash: String::new(),
                token_prefix: String::new(),
                user_id: user.id,
                impersonator_id: impersonator,
                impersonation_reason: None,
                impersonator_session_id: None,
                ip_address: None,
                user_agent: None,
                created_at: now,
                last_active_at: now,
                expires_at: now,
                absolute_expires_at: now,
                revoked_at: None,
                revoked_by: None,
                revoke_reason: None,
                end_reason: None,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{fixtures::*, *};

    #[test]
    fn the_session_rights_matrix() {
        use Role::*;
        // (caller role, owner role, allowed)
        let matrix = [
            (User, User, false),
            (User, Admin, false),
            (User, Owner, false),
            (Admin, User, true),
            (Admin, Admin, true),
            (Admin, Owner, false),
            (Owner, User, true),
            (Owner, Admin, true),
            (Owner, Owner, true),
        ];
        for (caller_role, owner_role, allowed) in matrix {
            let me = user(caller_role);
            let other = user(owner_role);
            assert_eq!(
                may_manage_sessions(&caller(&me, None), &other).is_ok(),
                allowed,
                "{caller_role:?} on {owner_role:?}'s sessions"
            );
            assert!(
                may_manage_sessions(&caller(&me, None), &me).is_ok(),
                "{caller_role:?} on own"
            );
        }
    }

    #[test]
    fn an_impersonation_session_never_carries_admin_rights() {
        let admin = user(Role::Admin);
        let target = user(Role::Admin);
        let other = user(Role::User);
        let as_target = caller(&target, Some(admin.id));
        assert!(
            may_manage_sessions(&as_target, &target).is_ok(),
            "own sessions"
        );
        assert!(
            may_manage_sessions(&as_target, &other).is_err(),
            "someone else's"
        );
        assert!(!may_read_all_audit(&as_target));
    }

    #[test]
    fn who_may_impersonate_whom() {
        use Role::*;
        let matrix = [
            (User, User, false),
            (User, Admin, false),
            (User, Owner, false),
            (Admin, User, true),
            (Admin, Admin, false),
            (Admin, Owner, false),
            (Owner, User, true),
            (Owner, Admin, true),
            (Owner, Owner, false),
        ];
        for (admin_role, target_role, allowed) in matrix {
            let admin = user(admin_role);
            let target = user(target_role);
            assert_eq!(
                may_impersonate(&caller(&admin, None), &target).is_ok(),
                allowed,
                "{admin_role:?} impersonating {target_role:?}"
            );
            assert!(
                may_impersonate(&caller(&admin, None), &admin).is_err(),
                "{admin_role:?} as self"
            );
        }
        let owner = user(Owner);
        let nested = caller(&user(User), Some(owner.id));
        assert!(may_impersonate(&nested, &user(User)).is_err(), "no nesting");
    }

    #[test]
    fn only_admins_and_owners_read_all_audit() {
        assert!(!may_read_all_audit(&caller(&user(Role::User), None)));
        assert!(may_read_all_audit(&caller(&user(Role::Admin), None)));
        assert!(may_read_all_audit(&caller(&user(Role::Owner), None)));
    }

    #[test]
    fn rights_on_an_impersonation_session_include_rights_over_the_impersonator() {
        use Role::*;
        let owner = user(Owner);
        let target = user(Admin);
        let other_admin = user(Admin);
        let opened_by_owner = Some(&owner);
        assert!(
            may_revoke_session(&caller(&other_admin, None), &target, opened_by_owner).is_err(),
            "an admin on an owner's impersonation of an admin"
        );
        assert!(
            may_revoke_session(&caller(&other_admin, None), &target, None).is_ok(),
            "the same admin on the target's ordinary session"
        );
        assert!(
            may_revoke_session(&caller(&owner, None), &target, opened_by_owner).is_ok(),
            "the impersonator"
        );
        assert!(
            may_revoke_session(&caller(&target, None), &target, opened_by_owner).is_ok(),
            "the impersonated user"
        );
        let admin = user(Admin);
        let alice = user(User);
        assert!(
            may_revoke_session(&caller(&other_admin, None), &alice, Some(&admin)).is_ok(),
            "an admin on another admin's impersonation of a user"
        );
        assert!(
            may_revoke_session(&caller(&user(User), None), &alice, Some(&admin)).is_err(),
            "a plain user on someone else's"
        );
    }

    #[test]
    fn an_impersonation_session_may_revoke_itself_only() {
        let admin = user(Role::Admin);
        let alice = user(Role::User);
        let as_alice = caller(&alice, Some(admin.id));
        let own = (alice.id, alice.role);
        assert!(
            may_revoke(
                &as_alice,
                as_alice.session.id,
                own,
                Some((admin.id, admin.role))
            )
            .is_ok()
        );
        assert!(
            may_revoke(&as_alice, Uuid::new_v4(), own, None).is_err(),
            "another of the user's sessions"
        );
        let mine = caller(&alice, None);
        assert!(
            may_revoke(&mine, Uuid::new_v4(), own, None).is_ok(),
            "the user's own session"
        );
        assert!(!may_revoke_all(&as_alice));
        assert!(may_revoke_all(&mine));
    }

    #[test]
    fn who_manages_which_account() {
        use Role::*;
        let actions = [
            Action::UpdateUser,
            Action::DisableUser,
            Action::EnableUser,
            Action::DeleteUser,
            Action::ResetPassword,
        ];
        // (caller role, account role, allowed)
        let matrix = [
            (User, User, false),
            (User, Admin, false),
            (User, Owner, false),
            (Admin, User, true),
            (Admin, Admin, false),
            (Admin, Owner, false),
            (Owner, User, true),
            (Owner, Admin, true),
            (Owner, Owner, true),
        ];
        for (caller_role, account_role, allowed) in matrix {
            let me = caller(&user(caller_role), None);
            let other = user(account_role);
            for action in actions {
                assert_eq!(
                    may_manage_user(&me, action, other.id, other.role).is_ok(),
                    allowed,
                    "{caller_role:?} {action:?} on {account_role:?}"
                );
            }
            assert_eq!(
                may_manage_user(&me, Action::SetUserRole, other.id, other.role).is_ok(),
                caller_role == Owner,
                "{caller_role:?} setting the role of {account_role:?}"
            );
            assert_eq!(
                may_grant_role(&me, account_role).is_ok(),
                allowed,
                "{caller_role:?} making {account_role:?}"
            );
        }
    }

    #[test]
    fn nobody_disables_deletes_demotes_or_resets_themselves() {
        let owner = user(Role::Owner);
        let me = caller(&owner, None);
        for action in [
            Action::DisableUser,
            Action::DeleteUser,
            Action::SetUserRole,
            Action::ResetPassword,
        ] {
            assert!(
                may_manage_user(&me, action, owner.id, owner.role).is_err(),
                "{action:?}"
            );
        }
        assert!(may_manage_user(&me, Action::UpdateUser, owner.id, owner.role).is_ok());
        let admin = user(Role::Admin);
        let as_user = caller(&user(Role::User), Some(admin.id));
        assert!(may_view_user(&as_user, as_user.user.id).is_ok());
        assert!(may_view_user(&as_user, admin.id).is_err());
        let as_owner = caller(&owner, Some(Uuid::new_v4()));
        assert!(
            may_manage_user(&as_owner, Action::UpdateUser, admin.id, admin.role).is_err(),
            "never from an impersonation session"
        );
    }

    #[test]
    fn role_only_rights_need_the_role_and_no_impersonation() {
        use Role::*;
        for (role, list, verify) in [
            (User, false, false),
            (Admin, true, false),
            (Owner, true, true),
        ] {
            let me = user(role);
            assert_eq!(may_list_users(&caller(&me, None)), list, "{role:?}");
            assert_eq!(may_verify_audit(&caller(&me, None)), verify, "{role:?}");
            let as_me = caller(&me, Some(Uuid::new_v4()));
            assert!(
                !may_list_users(&as_me) && !may_verify_audit(&as_me),
                "{role:?} impersonated"
            );
        }
    }
}
