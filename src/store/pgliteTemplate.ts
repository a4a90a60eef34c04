// Run by `npm run build` (src/build.mjs): makes the cluster a first start copies instead of
// running initdb (see initPgliteDir). Kept when it was made by the installed PGlite version.
import { PGLITE_START_PARAMS } from './pglite.js';
import { usableTemplate, writeTemplate } from './pgliteInit.js';

if (!usableTemplate()) await writeTemplate(PGLITE_START_PARAMS);
