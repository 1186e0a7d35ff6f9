import { createApp } from 'vue';
import App from './App.vue';
import { onAuthLost } from './api/client';
import { resetProjects } from './lib/projects';
import { router } from './router';
import './styles.css';

// The session is gone for good (refresh refused): back to login, remembering the page.
onAuthLost(() => {
  resetProjects();
  const current = router.currentRoute.value;
  if (current.name === 'login' || current.meta.public) return;
  void router.push({ path: '/login', query: { next: current.fullPath } });
});

createApp(App).use(router).mount('#app');
