// The task renderer escapes everything, and renders the few constructs prompts use (runs in node, no browser).
import { assert } from './assert.mjs';
import { renderMarkdown } from '../src/markdown.js';

export const name = 'markdown: prompts render, and no markup gets through';

export default async function () {
  const html = renderMarkdown(
    [
      '# Title',
      'Create `/srv/<x>` with **mode** *2770*; see [docs](https://example.org/a?b=1&c=2).',
      '',
      '- one',
      '- two `a && b`',
      '',
      '1. first',
      '2. second',
      '',
      '```',
      'echo "<b>" && rm -rf /tmp/x',
      '```',
    ].join('\n'),
  );
  assert(html.includes('<h3>Title</h3>'), html);
  assert(html.includes('<code>/srv/&lt;x&gt;</code>'), html);
  assert(html.includes('<strong>mode</strong>') && html.includes('<em>2770</em>'), html);
  assert(html.includes('<a href="https://example.org/a?b=1&amp;c=2" rel="noopener noreferrer" target="_blank">docs</a>'), html);
  assert(html.includes('<ul><li>one</li><li>two <code>a &amp;&amp; b</code></li></ul>'), html);
  assert(html.includes('<ol><li>first</li><li>second</li></ol>'), html);
  assert(html.includes('<pre><code>echo &quot;&lt;b&gt;&quot; &amp;&amp; rm -rf /tmp/x</code></pre>'), html);

  for (const evil of [
    '<script>alert(1)</script>',
    '<img src=x onerror=alert(1)>',
    '[x](javascript:alert(1))',
    '[x](https://a.b/"onmouseover="alert(1))',
    '**<svg onload=alert(1)>**',
  ]) {
    const out = renderMarkdown(evil);
    assert(!/<(script|img|svg)/i.test(out), `escaped: ${out}`);
    assert(!/href="javascript/i.test(out), `no javascript: links: ${out}`);
    assert(!/"on\w+=/i.test(out) && !/\son\w+="/i.test(out), `no event attributes: ${out}`);
  }
}
