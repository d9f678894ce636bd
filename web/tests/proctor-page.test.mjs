// The proctor page: a candidate starts an exam; the proctor (sent from / to /proctor) sees the row, opens it, and
// terminates it from the form without grading; the candidate's page shows the end, and the proctor's table shows
// `terminated`. A candidate going to /proctor is told the page is for proctors. When the server goes away, the proctor
// page shows the connection banner and recovers.
import { fileURLToPath } from 'node:url';
import { assert, signIn, startExam } from './assert.mjs';

export const name = 'the proctor page: live table, event trail, terminate without grading';

export default async function ({ page, base, signInUrl, shot, newContext, server }) {
  const candidate = signInUrl();
  await signIn(page, candidate.url);
  const id = await startExam(page, base, 'quick-check');
  await page.locator('[data-page="exam"]').waitFor({ timeout: 30000 });
  await page.locator('.xterm-rows').waitFor();

  // A candidate at /proctor: a plain message, no table.
  const other = await newContext();
  try {
    const cp = await other.newPage();
    await cp.goto(signInUrl().url);
    await cp.locator('[data-page="catalog"]').waitFor({ timeout: 15000 });
    await cp.goto(base + '/proctor');
    await cp.locator('[data-page="proctors-only"]').waitFor({ timeout: 15000 });
    assert((await cp.locator('h1').textContent()).includes('for proctors'), 'the candidate is told the page is for proctors');
    assert((await cp.locator('table.sessions').count()) === 0, 'no table for a candidate');
  } finally {
    await other.close();
  }

  const pctx = await newContext();
  try {
    const pp = await pctx.newPage();
    const pshot = (label) => pp.screenshot({ path: fileURLToPath(new URL(`../test-output/proctor-page-proctor-${label}.png`, import.meta.url)) });
    await pp.goto(signInUrl('proctor').url);
    // Sign-in comes back to /, which sends a proctor to /proctor.
    await pp.waitForURL((u) => u.pathname === '/proctor', { timeout: 15000 });
    await pp.locator('[data-page="proctor"]').waitFor({ timeout: 15000 });
    const row = pp.locator(`tr[data-session="${id}"]`);
    await row.waitFor({ timeout: 15000 });
    assert((await row.textContent()).includes(candidate.user), 'the row names the candidate');
    await pp.waitForFunction(
      (sid) => ['ready', 'active'].includes(document.querySelector(`tr[data-session="${sid}"]`)?.dataset.state),
      id,
      { timeout: 15000 },
    );
    // The remaining time counts down locally once the clock runs.
    const rem = row.locator('td.remaining');
    await pp.waitForFunction((el) => /^\d\d:\d\d/.test(el.textContent), await rem.elementHandle(), { timeout: 15000 });
    await pshot('table');

    // Open it by keyboard: the row's button.
    await row.locator('button.row-link').focus();
    await pp.keyboard.press('Enter');
    await pp.locator('.proctor-detail ol.event-trail li[data-kind]').first().waitFor({ timeout: 10000 });
    // The detail names the exam version the session runs on (the first 12 hex digits; the whole one on hover).
    const version = pp.locator('.proctor-detail .exam-version');
    assert(/^[0-9a-f]{12}$/.test(await version.textContent()), 'the session shows its exam version');
    assert(/^[0-9a-f]{64}$/.test(await version.getAttribute('title')), 'the whole version on hover');
    const form = pp.locator('form.terminate-form');
    await form.waitFor();
    const grade = form.getByLabel('Grade this end');
    assert(await grade.isChecked(), '"grade this end" is checked by default');

    // The reason is required.
    await form.getByRole('button', { name: 'Terminate' }).click();
    assert(!(await pp.locator('dialog.confirm').evaluate((d) => d.open)), 'no confirmation without a reason');

    await form.getByLabel('Reason (required)').fill('browser test: proctor page');
    await grade.uncheck();
    await form.getByRole('button', { name: 'Terminate' }).click();
    const dialog = pp.locator('dialog.confirm');
    await dialog.waitFor();
    assert((await dialog.textContent()).includes('without grading'), 'the confirmation says it will not be graded');
    await pshot('confirm');
    await dialog.getByRole('button', { name: 'Terminate now' }).click();

    // The candidate's page shows the end.
    await page.locator('[data-page="ended"]').waitFor({ timeout: 15000 });
    assert((await page.locator('.reason').getAttribute('data-reason')) === 'terminated_by_proctor', 'the end reason');
    assert((await page.locator('.reason').textContent()).includes('A proctor ended your exam'), 'the candidate is told');
    await page.getByText('This exam was not graded').waitFor({ timeout: 30000 });
    await shot('candidate-ended');

    // The proctor's table shows it terminated (by polling alone).
    await pp.waitForFunction(
      (sid) => document.querySelector(`tr[data-session="${sid}"]`)?.dataset.state === 'terminated',
      id,
      { timeout: 60000 },
    );
    assert((await row.locator('td.state').textContent()).trim() === 'terminated', 'the state cell says terminated');
    await pp.locator('.proctor-detail li[data-kind="proctor_action"], .proctor-detail li').filter({ hasText: 'browser test: proctor page' }).first().waitFor({ timeout: 10000 });
    await pshot('terminated');

    // The server goes away: the connection banner counts the attempts; when it is back, the banner goes and the
    // table refreshes again.
    await server.stop();
    const banner = pp.locator('#banner');
    await pp.waitForFunction(
      () => /Connection lost, reconnecting \(attempt [2-9]\)/.test(document.getElementById('banner').textContent),
      null,
      { timeout: 15000 },
    );
    await pshot('banner');
    await server.start();
    await banner.waitFor({ state: 'hidden', timeout: 30000 });
    await row.waitFor();
    assert((await row.getAttribute('data-state')) === 'terminated', 'the table is back after the outage');
  } finally {
    await pctx.close();
  }
  await shot('end');
}
