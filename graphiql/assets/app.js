// Brokkr's GraphiQL page: GraphiQL 3 (vendor.js, window.BrokkrGraphiQL) with
// an API-key bar. The key is entered once and kept in this browser
// (localStorage); it goes out as `Authorization: Bearer <key>` on every HTTP
// request and in the connection_init payload of the websocket that carries
// subscriptions (graphql-transport-ws). Nothing is loaded from anywhere but
// this broker: the page's Content-Security-Policy allows only 'self'.
(function () {
  'use strict';

  var STORAGE_KEY = 'brokkr.apiKey';

  // The style nonce of this page's Content-Security-Policy: the dialogs'
  // scroll lock (react-style-singleton, through get-nonce) inserts a <style>
  // element carrying __webpack_nonce__.
  var nonceMeta = document.querySelector('meta[name="brokkr-style-nonce"]');
  if (nonceMeta) {
    window.__webpack_nonce__ = nonceMeta.getAttribute('content');
  }
  var lib = window.BrokkrGraphiQL;
  var mount = document.getElementById('graphiql');
  if (!lib) {
    mount.textContent = 'GraphiQL could not load (vendor.js is missing).';
    return;
  }

  function storedKey() {
    try {
      return window.localStorage.getItem(STORAGE_KEY) || '';
    } catch (e) {
      return ''; // storage disabled: the key lives until the page reloads
    }
  }
  function storeKey(k) {
    try {
      if (k) window.localStorage.setItem(STORAGE_KEY, k);
      else window.localStorage.removeItem(STORAGE_KEY);
    } catch (e) { /* storage disabled */ }
  }

  var key = storedKey();
  var input = document.getElementById('brokkr-key');
  var status = document.getElementById('brokkr-key-status');
  input.value = key;
  function showStatus() {
    status.className = key ? '' : 'brokkr-missing';
    status.textContent = key
      ? 'Key saved in this browser; sent with every request and subscription.'
      : 'No key: every field but introspection answers UNAUTHENTICATED.';
  }
  showStatus();

  // Saving (or forgetting) a key reloads the page: the schema is fetched
  // again and the websocket reconnects with the new key.
  document.getElementById('brokkr-key-form').addEventListener('submit', function (ev) {
    ev.preventDefault();
    storeKey(input.value.trim());
    window.location.reload();
  });
  document.getElementById('brokkr-key-forget').addEventListener('click', function () {
    storeKey('');
    window.location.reload();
  });

  function authorization() {
    return key ? 'Bearer ' + key : '';
  }

  var wsClient = lib.createClient({
    url: (window.location.protocol === 'https:' ? 'wss://' : 'ws://') + window.location.host + '/query',
    lazy: true,
    // Called at every (re)connection.
    connectionParams: function () {
      return key ? { Authorization: authorization() } : {};
    },
    retryAttempts: 5,
  });

  var fetcher = lib.createGraphiQLFetcher({
    url: '/query',
    wsClient: wsClient,
    enableIncrementalDelivery: false,
    // The key goes into every HTTP request, unless the headers editor sets
    // an Authorization of its own.
    fetch: function (url, init) {
      init = init || {};
      var headers = new Headers(init.headers || {});
      if (key && !headers.has('Authorization')) {
        headers.set('Authorization', authorization());
      }
      init.headers = headers;
      return window.fetch(url, init);
    },
  });

  var defaultQuery = [
    '# Welcome to Brokkr. Paste your API key in',
    '# the bar above and press Save: it stays in',
    '# this browser, and goes with every request',
    '# and subscription.',
    '#',
    '# Ctrl-Enter runs the query; the book icon',
    '# on the left opens the API documentation.',
    '# A subscription runs until you stop it:',
    '#',
    '# subscription {',
    '#   stackDeploymentObjects(stackId: "…") {',
    '#     sequenceId yamlContent',
    '#   }',
    '# }',
    '',
    'query Viewer {',
    '  viewer {',
    '    role',
    '    generator { id name }',
    '    agent { id name status }',
    '  }',
    '}',
    '',
  ].join('\n');

  mount.textContent = '';
  lib.createRoot(mount).render(
    lib.React.createElement(lib.GraphiQL, {
      fetcher: fetcher,
      defaultQuery: defaultQuery,
      isHeadersEditorEnabled: true,
      shouldPersistHeaders: false,
    })
  );
})();
