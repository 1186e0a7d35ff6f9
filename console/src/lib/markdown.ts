import DOMPurify from 'dompurify';
import { Marked } from 'marked';

const ESCAPES: Record<string, string> = { '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' };
function escapeHtml(text: string): string {
  return text.replace(/[&<>"']/g, (c) => ESCAPES[c] ?? c);
}

// Raw HTML in Markdown is shown as text, never parsed: `<script>` or `<img onerror=…>` in a
// message reads as what it is. DOMPurify below still sanitizes what Markdown itself produces
// (links: `[x](javascript:…)` loses its href).
const marked = new Marked({
  gfm: true,
  breaks: true,
  async: false,
  renderer: {
    html(token) {
      return escapeHtml(token.text);
    },
  },
});

let hooked = false;
function hook(): void {
  if (hooked) return;
  hooked = true;
  DOMPurify.addHook('afterSanitizeAttributes', (node) => {
    if (node.tagName === 'A') {
      const href = node.getAttribute('href') ?? '';
      // Only http(s), mailto and same-page links stay clickable.
      if (href && !/^(https?:|mailto:|#|\/)/i.test(href)) node.removeAttribute('href');
      node.setAttribute('rel', 'noopener noreferrer');
      node.setAttribute('target', '_blank');
    }
  });
}

/** Markdown → sanitized HTML: no script, no event handlers, no javascript: links. */
export function renderMarkdown(source: string): string {
  hook();
  const raw = marked.parse(source ?? '') as string;
  return DOMPurify.sanitize(raw, {
    USE_PROFILES: { html: true },
    FORBID_TAGS: ['style', 'form', 'input', 'button', 'textarea', 'select', 'iframe', 'object', 'embed'],
    FORBID_ATTR: ['style'],
    ALLOW_DATA_ATTR: false,
  });
}
