#!/usr/bin/env node
// The dbaudit command. The sources are TypeScript run through tsx's loader,
// so `npx dbaudit …` works right after `npm ci` with no build step.
import { register } from 'tsx/esm/api';

register();
await import('../proxy/main.ts');
