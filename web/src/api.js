// Calls to the examroom API. The session cookie goes automatically (same origin); every request that changes state
// carries `X-Examroom: 1`, which the server requires of cookie requests alongside a matching Origin.

export class ApiError extends Error {
  constructor(status, body) {
    const e = (body && body.error) || {};
    super(e.message || `The server answered ${status}.`);
    this.status = status;
    this.code = e.code || 'http_' + status;
    this.guidance = e.guidance || '';
    this.incident = e.incident || null;
    this.sessionId = e.session_id || null;
  }
}

export async function api(path, { method = 'GET', body } = {}) {
  const headers = { Accept: 'application/json' };
  if (method !== 'GET' && method !== 'HEAD') headers['X-Examroom'] = '1';
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  let r;
  try {
    r = await fetch(path, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      credentials: 'same-origin',
      cache: 'no-store',
    });
  } catch (e) {
    const err = new ApiError(0, {
      error: {
        code: 'network',
        message: 'The exam server could not be reached.',
        guidance: 'Check your network connection, then try again.',
      },
    });
    throw err;
  }
  let data = null;
  const text = await r.text();
  if (text) {
    try {
      data = JSON.parse(text);
    } catch {
      data = null;
    }
  }
  if (!r.ok) throw new ApiError(r.status, data);
  return data;
}

export const FINAL = new Set(['terminated', 'failed']);
export const isLive = (state) => !FINAL.has(state);
