// The third-party code of the GraphiQL page, bundled by build.mjs into
// ../assets/vendor.js (one IIFE, minified) and ../assets/vendor.css. The
// page's own code, ../assets/app.js, is plain JavaScript served as it is and
// reaches these through window.BrokkrGraphiQL.
import React from 'react';
import { createRoot } from 'react-dom/client';
import { GraphiQL } from 'graphiql';
import { createGraphiQLFetcher } from '@graphiql/toolkit';
import { createClient } from 'graphql-ws';
import 'graphiql/graphiql.css';

window.BrokkrGraphiQL = { React, createRoot, GraphiQL, createGraphiQLFetcher, createClient };
