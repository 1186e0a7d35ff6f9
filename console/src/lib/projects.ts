// The project switcher's state: the projects the user may read and the one chosen. In memory
// only (nothing in localStorage); the chosen project filters the task list, is the default of a
// new task and is sent as the chat's OpenAI-Project header.
import { computed, reactive } from 'vue';
import { request } from '../api/client';
import type { Project, ProjectList } from '../api/types';

interface ProjectsState {
  list: Project[];
  loaded: boolean;
  error: unknown;
  /** The chosen project's id; '' = all projects. */
  currentId: string;
}

export const projects = reactive<ProjectsState>({ list: [], loaded: false, error: null, currentId: '' });

export const currentProject = computed<Project | null>(
  () => projects.list.find((p) => p.id === projects.currentId) ?? null,
);

let loading: Promise<void> | null = null;

export function loadProjects(force = false): Promise<void> {
  if (projects.loaded && !force) return Promise.resolve();
  if (!loading) {
    loading = request<ProjectList>('/v1/projects', { reportOutage: false })
      .then((body) => {
        projects.list = body.projects ?? [];
        projects.error = null;
        projects.loaded = true;
        if (projects.currentId && !projects.list.some((p) => p.id === projects.currentId)) {
          projects.currentId = '';
        }
      })
      .catch((e: unknown) => {
        projects.error = e;
      })
      .finally(() => {
        loading = null;
      });
  }
  return loading;
}

export function projectLabel(id: string | null | undefined): string {
  if (!id) return '—';
  const p = projects.list.find((x) => x.id === id);
  return p ? p.display_name || p.slug : id.slice(0, 8);
}

export function resetProjects(): void {
  projects.list = [];
  projects.loaded = false;
  projects.currentId = '';
}
