/// <reference types="vitest/config" />
import { defineConfig } from 'vite';

export default defineConfig({
  // Served from the site root by the reverse proxy.
  base: '/',
  build: {
    outDir: 'dist',
    emptyOutDir: true,
    // Every asset is a file: nothing is inlined into index.html (strict CSP).
    assetsInlineLimit: 0,
    sourcemap: false,
    target: 'es2022',
  },
  test: {
    include: ['src/**/*.test.ts', '*.test.mjs'],
    environment: 'node',
  },
});
