// Every console route. Login and the task list are in the main bundle; every other page is
// loaded when first opened. Admin routes carry the system action that shows them in the nav
// (the API refuses them anyway for anyone without a role that allows them).
import { createRouter, createWebHistory, type RouteLocationNormalized, type RouteRecordRaw } from 'vue-router';
import { auth, loadSession } from './api/client';
import LoginPage from './pages/LoginPage.vue';
import TaskListPage from './pages/TaskListPage.vue';

declare module 'vue-router' {
  interface RouteMeta {
    /** The document title (before " · CyNodeAI"). */
    title?: string;
    /** Reachable without a session (login). */
    public?: boolean;
    /** A system action that shows the route in the nav. */
    action?: string;
  }
}

export const routes: RouteRecordRaw[] = [
  { path: '/', redirect: '/tasks' },
  { path: '/login', name: 'login', component: LoginPage, meta: { title: 'Log in', public: true } },
  {
    path: '/set-password',
    name: 'set-password',
    component: () => import('./pages/account/SetPasswordPage.vue'),
    meta: { title: 'Set your password', public: true },
  },
  { path: '/logout', name: 'logout', component: () => import('./pages/LogoutPage.vue'), meta: { title: 'Log out', public: true } },
  { path: '/tasks', name: 'tasks', component: TaskListPage, meta: { title: 'Tasks' } },
  { path: '/tasks/new', name: 'task-new', component: () => import('./pages/TaskNewPage.vue'), meta: { title: 'New task' } },
  { path: '/tasks/:id', name: 'task', component: () => import('./pages/TaskDetailPage.vue'), meta: { title: 'Task' }, props: true },
  { path: '/chat', name: 'chat', component: () => import('./pages/ChatPage.vue'), meta: { title: 'Chat' } },
  { path: '/chat/:threadId', name: 'chat-thread', component: () => import('./pages/ChatPage.vue'), meta: { title: 'Chat' }, props: true },
  { path: '/account/password', name: 'password', component: () => import('./pages/account/ChangePasswordPage.vue'), meta: { title: 'Change password' } },
  { path: '/keys', name: 'keys', component: () => import('./pages/account/ApiKeysPage.vue'), meta: { title: 'API keys' } },
  { path: '/preferences', name: 'preferences', component: () => import('./pages/account/PreferencesPage.vue'), meta: { title: 'Preferences' } },
  { path: '/projects', name: 'projects', component: () => import('./pages/account/ProjectsPage.vue'), meta: { title: 'Projects' } },
  { path: '/api-docs', name: 'api-docs', component: () => import('./pages/account/ApiDocsPage.vue'), meta: { title: 'API docs' } },
  { path: '/nodes', name: 'nodes', component: () => import('./pages/admin/NodesPage.vue'), meta: { title: 'Nodes', action: 'node.read' } },
  { path: '/nodes/:slug', name: 'node', component: () => import('./pages/admin/NodeDetailPage.vue'), meta: { title: 'Node', action: 'node.read' }, props: true },
  { path: '/admin/users', name: 'users', component: () => import('./pages/admin/UsersPage.vue'), meta: { title: 'Users', action: 'user.read' } },
  { path: '/admin/groups', name: 'groups', component: () => import('./pages/admin/GroupsPage.vue'), meta: { title: 'Groups', action: 'group.read' } },
  { path: '/admin/rules', name: 'rules', component: () => import('./pages/admin/RulesPage.vue'), meta: { title: 'Access rules', action: 'rule.manage' } },
  { path: '/admin/audit', name: 'audit', component: () => import('./pages/admin/AuditPage.vue'), meta: { title: 'Audit', action: 'audit.read' } },
  { path: '/:pathMatch(.*)*', name: 'not-found', component: () => import('./pages/NotFoundPage.vue'), meta: { title: 'Not found', public: true } },
];

export const router = createRouter({
  history: createWebHistory('/'),
  routes,
  scrollBehavior(to, _from, saved) {
    if (saved) return saved;
    if (to.hash) return { el: to.hash };
    return { top: 0 };
  },
});

/** A `next` target that stays inside the console (no open redirect). */
export function safeNext(value: unknown): string {
  const next = Array.isArray(value) ? value[0] : value;
  if (typeof next !== 'string' || !next.startsWith('/') || next.startsWith('//') || next.startsWith('/\\')) {
    return '/tasks';
  }
  if (next.startsWith('/login') || next.startsWith('/logout')) return '/tasks';
  return next;
}

router.beforeEach(async (to: RouteLocationNormalized) => {
  if (!auth.checked) {
    try {
      await loadSession();
    } catch {
      // The gateway is down or failing: the shell renders with the banner; pages say more.
      return true;
    }
  }
  if (to.name === 'login' && auth.user) return safeNext(to.query.next);
  if (!to.meta.public && !auth.user) {
    return { path: '/login', query: { next: to.fullPath } };
  }
  return true;
});

router.afterEach((to) => {
  document.title = to.meta.title ? `${to.meta.title} · CyNodeAI` : 'CyNodeAI';
});
