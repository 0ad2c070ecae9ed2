// GraphiQL bootstrap for session-manager. Loaded as an external script so the
// page works under a CSP without 'unsafe-inline' in script-src.
(function () {
  'use strict';

  var DEFAULT_QUERY = [
    '# session-manager GraphiQL',
    '#',
    '# How to sign in:',
    '# 1. Run SignIn (click the play button',
    '#    and pick "SignIn").',
    '# 2. Copy the returned `token`.',
    '# 3. In the Headers tab below, enter',
    '#    {"Authorization": "Bearer <token>"}',
    '# 4. Run Viewer to check who you are.',
    '',
    'mutation SignIn {',
    '  signIn(email: "owner@example.com", password: "owner-password-1") {',
    '    token',
    '    session { id sessionToken expires }',
    '  }',
    '}',
    '',
    'query Viewer {',
    '  viewer { user { id email name role } session { id sessionToken expires } }',
    '}',
    '',
  ].join('\n');

  // Empty on purpose: a placeholder Authorization header would be sent with
  // the first SignIn and refused as a malformed token.
  var DEFAULT_HEADERS = '{}';

  var container = document.getElementById('graphiql');

  if (!window.React || !window.ReactDOM || !window.GraphiQL) {
    container.textContent =
      'Failed to load GraphiQL assets (React, ReactDOM or GraphiQL missing).';
    return;
  }

  var fetcher = GraphiQL.createFetcher({
    url: new URL('/graphql', location.href).href,
  });

  var root = ReactDOM.createRoot(container);
  root.render(
    React.createElement(GraphiQL, {
      fetcher: fetcher,
      defaultQuery: DEFAULT_QUERY,
      defaultHeaders: DEFAULT_HEADERS,
      isHeadersEditorEnabled: true,
      defaultEditorToolsVisibility: 'headers',
      shouldPersistHeaders: false,
    })
  );
})();
