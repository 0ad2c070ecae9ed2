// Account management on the admin pages: making an account (the users
// page), and on a user's page their account's facts and the actions the
// server says the viewer may take (`User.canUpdate`, `canSetRole`,
// `canDisable`, `canResetPassword`, `canDelete`; `Viewer.can.manageUsers`
// and `grantableRoles`), never a copy of its rules.

import { gql } from './api.js';
import { facts, field, h, mount, timeEl } from './dom.js';

/** The fields of `User` the admin pages show and act on. */
export const USER_FIELDS = `id email name role status disabledAt disabledReason externalId lastSignInAt createdAt
  canImpersonate canUpdate canSetRole canDisable canDelete canResetPassword`;

const ROLE_LABELS = { USER: 'User', ADMIN: 'Admin', OWNER: 'Owner' };

/** A status badge: "active" or "disabled". */
export function statusBadge(user) {
  const status = (user.status || 'ACTIVE').toLowerCase();
  return h('span', { class: `badge status-${status}`, 'data-testid': 'status' }, status);
}

function roleSelect(roles, selected) {
  return h(
    'select',
    { name: 'role' },
    roles.map((role) => h('option', { value: role, selected: role === selected }, ROLE_LABELS[role] || role)),
  );
}

/**
 * Runs `work` from `button` (disabled meanwhile); reports a failure and
 * answers whether it succeeded.
 */
async function act(ctx, button, work) {
  button.disabled = true;
  try {
    await work();
    return true;
  } catch (error) {
    ctx.reportError(error);
    return false;
  } finally {
    button.disabled = false;
  }
}

/**
 * The "New account" form of the users page, for viewers the server lets
 * make accounts; `onCreated(user)` runs with the new account.
 */
export function newUserForm(ctx, { onCreated }) {
  const roles = ctx.viewer?.can?.grantableRoles || [];
  const email = h('input', { type: 'email', name: 'email', required: true, maxlength: 320, autocomplete: 'off' });
  const name = h('input', { type: 'text', name: 'name', required: true, maxlength: 200, autocomplete: 'off' });
  const role = roleSelect(roles, 'USER');
  const password = h('input', { type: 'password', name: 'password', minlength: 12, maxlength: 256, autocomplete: 'new-password' });
  const submit = h('button', { type: 'submit', class: 'primary' }, 'Create account');
  const form = h(
    'form',
    { class: 'card', 'aria-labelledby': 'new-user-title' },
    h('h2', { id: 'new-user-title' }, 'New account'),
    field('Email', email),
    field('Name', name),
    field('Role', role),
    field('Password (optional)', password, 'At least 12 characters. Without one, the account gets sessions only from your application’s backend.'),
    submit,
  );
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    await act(ctx, submit, async () => {
      const input = { email: email.value.trim(), name: name.value.trim(), role: role.value };
      if (password.value) input.password = password.value;
      const data = await gql(
        `mutation CreateUser($input: CreateUserInput!) { createUser(input: $input) { ${USER_FIELDS} } }`,
        { input },
      );
      password.value = '';
      form.reset();
      ctx.notify(`Created the account of ${data.createUser.name} (${data.createUser.email}).`, 'success');
      await onCreated(data.createUser);
    });
  });
  return form;
}

/**
 * A user's account: its facts and the actions the viewer may take on it.
 * `onChanged(user)` runs after a change with the account as it is now;
 * `onDeleted(user)` after it was deleted.
 */
export function accountSection(ctx, user, { onChanged, onDeleted }) {
  const mutate = (query, variables, field) => gql(query, variables).then((data) => data[field]);
  const forms = [];

  if (user.canUpdate) {
    const name = h('input', { type: 'text', name: 'name', required: true, maxlength: 200, value: user.name });
    const email = h('input', { type: 'email', name: 'email', required: true, maxlength: 320, value: user.email });
    const save = h('button', { type: 'submit' }, 'Save changes');
    const form = h('form', { class: 'stack', 'aria-label': 'Edit name and email' }, field('Name', name), field('Email', email), save);
    form.addEventListener('submit', async (event) => {
      event.preventDefault();
      const input = {};
      if (name.value.trim() !== user.name) input.name = name.value.trim();
      if (email.value.trim().toLowerCase() !== user.email) input.email = email.value.trim();
      if (!Object.keys(input).length) {
        ctx.notify('Nothing to save: the name and email are unchanged.', 'info');
        return;
      }
      await act(ctx, save, async () => {
        const updated = await mutate(
          `mutation UpdateUser($id: UUID!, $input: UpdateUserInput!) { updateUser(id: $id, input: $input) { ${USER_FIELDS} } }`,
          { id: user.id, input },
          'updateUser',
        );
        ctx.notify(`Saved the account of ${updated.name}.`, 'success');
        await onChanged(updated);
      });
    });
    forms.push(form);
  }

  if (user.canSetRole) {
    const role = roleSelect(ctx.viewer?.can?.grantableRoles || [user.role], user.role);
    const change = h('button', { type: 'submit' }, 'Change role');
    const form = h('form', { class: 'inline-form', 'aria-label': 'Change the role' }, field('Role', role), change);
    form.addEventListener('submit', async (event) => {
      event.preventDefault();
      if (role.value === user.role) return;
      await act(ctx, change, async () => {
        const updated = await mutate(
          `mutation SetRole($id: UUID!, $role: Role!) { setUserRole(id: $id, role: $role) { ${USER_FIELDS} } }`,
          { id: user.id, role: role.value },
          'setUserRole',
        );
        ctx.notify(`${updated.name} is now ${ROLE_LABELS[updated.role].toLowerCase()}.`, 'success');
        await onChanged(updated);
      });
    });
    forms.push(form);
  }

  if (user.canResetPassword) {
    const password = h('input', { type: 'password', name: 'new-password', required: true, minlength: 12, maxlength: 256, autocomplete: 'new-password' });
    const set = h('button', { type: 'submit' }, 'Set password');
    const form = h(
      'form',
      { class: 'inline-form', 'aria-label': 'Reset the password' },
      field('New password', password, 'At least 12 characters. Every session of the account ends.'),
      set,
    );
    form.addEventListener('submit', async (event) => {
      event.preventDefault();
      await act(ctx, set, async () => {
        await mutate('mutation SetPassword($id: UUID!, $p: String!) { setPassword(id: $id, password: $p) }', { id: user.id, p: password.value }, 'setPassword');
        password.value = '';
        ctx.notify(`Set a new password for ${user.name}; their sessions have ended.`, 'success');
        await onChanged(user);
      });
    });
    forms.push(form);
  }

  if (user.canDisable && user.status === 'DISABLED') {
    const enable = h('button', { type: 'button' }, 'Enable account');
    enable.addEventListener('click', () =>
      act(ctx, enable, async () => {
        const updated = await mutate(`mutation Enable($id: UUID!) { enableUser(id: $id) { ${USER_FIELDS} } }`, { id: user.id }, 'enableUser');
        ctx.notify(`Enabled the account of ${updated.name}: they may sign in again.`, 'success');
        await onChanged(updated);
      }));
    forms.push(h('div', { class: 'buttons' }, enable));
  } else if (user.canDisable) {
    const reason = h('textarea', { name: 'disable-reason', required: true, maxlength: 500, rows: 2 });
    const disable = h('button', { type: 'submit', class: 'danger' }, 'Disable account');
    const form = h(
      'form',
      { class: 'stack', 'aria-label': 'Disable the account' },
      field('Reason for disabling', reason, 'Every session of the account ends at once, and it cannot sign in until enabled.'),
      disable,
    );
    form.addEventListener('submit', async (event) => {
      event.preventDefault();
      if (!reason.value.trim()) {
        ctx.notify('Please give a reason for disabling the account.', 'error');
        reason.focus();
        return;
      }
      await act(ctx, disable, async () => {
        const updated = await mutate(
          `mutation Disable($id: UUID!, $reason: String!) { disableUser(id: $id, reason: $reason) { ${USER_FIELDS} } }`,
          { id: user.id, reason: reason.value.trim() },
          'disableUser',
        );
        ctx.notify(`Disabled the account of ${updated.name}; their sessions have ended.`, 'success');
        await onChanged(updated);
      });
    });
    forms.push(form);
  }

  if (user.canDelete) {
    // Two steps: the first click asks, the second deletes.
    const remove = h('button', { type: 'button', class: 'danger' }, 'Delete account…');
    let armed = false;
    remove.addEventListener('click', async () => {
      if (!armed) {
        armed = true;
        remove.textContent = `Delete ${user.email} for good`;
        remove.setAttribute('aria-describedby', 'delete-hint');
        return;
      }
      await act(ctx, remove, async () => {
        await mutate('mutation Delete($id: UUID!) { deleteUser(id: $id) }', { id: user.id }, 'deleteUser');
        ctx.notify(`Deleted the account of ${user.name} (${user.email}). Its audit events stay.`, 'success');
        await onDeleted(user);
      });
    });
    forms.push(
      h('div', { class: 'stack' },
        h('p', { class: 'hint', id: 'delete-hint' }, 'Deleting ends its sessions; its audit events stay and its email may be used again.'),
        h('div', { class: 'buttons' }, remove)),
    );
  }

  return h(
    'section',
    { class: 'card account', 'aria-labelledby': 'account-title' },
    h('h2', { id: 'account-title' }, 'Account'),
    h('div', { 'data-part': 'facts' }, accountFacts(user)),
    forms,
  );
}

function accountFacts(user) {
  return facts([
    ['Status', statusBadge(user)],
    ['Disabled', user.disabledAt ? timeEl(user.disabledAt) : null],
    ['Why', user.disabledReason || null],
    ['Last sign-in', user.lastSignInAt ? timeEl(user.lastSignInAt) : 'never'],
    ['Created', timeEl(user.createdAt, { relativeToo: false })],
    ['External ID', user.externalId || null],
  ]);
}

// What the forms are built from: while it stays the same, a refresh
// (a live event, say the user signing in) updates the facts only and
// keeps what the viewer is typing.
function formsKey(user) {
  const { id, name, email, role, status, canUpdate, canSetRole, canDisable, canDelete, canResetPassword } = user;
  return JSON.stringify([id, name, email, role, status, canUpdate, canSetRole, canDisable, canDelete, canResetPassword]);
}

/**
 * Shows the account section of `user` in `el`: built anew when what its
 * forms depend on changed, else only its facts are updated.
 */
export function showAccount(el, ctx, user, handlers) {
  const key = formsKey(user);
  const shownFacts = el.querySelector('[data-part="facts"]');
  if (el.dataset.forms === key && shownFacts) {
    mount(shownFacts, accountFacts(user));
    return;
  }
  el.dataset.forms = key;
  mount(el, accountSection(ctx, user, handlers));
}
