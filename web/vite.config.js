import { defineConfig } from 'vite';

// Built into web/dist, which the server embeds (release) or reads from disk (debug). No CDN: everything is bundled.
export default defineConfig({
  base: '/',
  build: { outDir: 'dist', emptyOutDir: true, assetsDir: 'assets', sourcemap: false, chunkSizeWarningLimit: 1000 },
  server: { proxy: { '/api': { target: 'http://127.0.0.1:8080', ws: true }, '/signin': 'http://127.0.0.1:8080' } },
});
