import { defineConfig } from 'vite';
import vue from '@vitejs/plugin-vue';

// A static SPA served by the user gateway at `/` (same origin as the API). During `npm run dev`
// the API calls go to a gateway on loopback (CYNODE_GATEWAY, default http://127.0.0.1:12080).
const gateway = process.env.CYNODE_GATEWAY ?? 'http://127.0.0.1:12080';

export default defineConfig({
  plugins: [vue()],
  base: '/',
  build: {
    outDir: 'dist',
    emptyOutDir: true,
    target: 'es2022',
    sourcemap: false,
    // No inline scripts or data: modules (CSP script-src 'self').
    assetsInlineLimit: 0,
    modulePreload: { polyfill: false },
    chunkSizeWarningLimit: 600,
  },
  server: {
    host: '127.0.0.1',
    proxy: {
      '/v1': { target: gateway, changeOrigin: false },
      '/openapi.json': { target: gateway, changeOrigin: false },
    },
  },
});
