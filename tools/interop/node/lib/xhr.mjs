// A minimal XMLHttpRequest over Node's http/https modules, for strophe.js's
// BOSH transport under Node 20. Node has no XMLHttpRequest, and the npm
// `xmlhttprequest` package never fills `responseXML`, which is the only thing
// strophe reads a BOSH response from (src/request.ts getResponse: with
// responseText alone it parses but then returns null, and the session stalls).
//
// What strophe's Bosh/Request use, and so what this implements:
//   open(method, url, async=true)  (sync is refused: strophe's `sync` option is
//                                   for page unload in browsers)
//   setRequestHeader, send(body), abort, overrideMimeType (XML is always parsed)
//   readyState 0..4 + onreadystatechange, status, statusText,
//   responseText, responseXML, getAllResponseHeaders, getResponseHeader
// plus `timeout`/`ontimeout` and onload/onerror/onabort for other callers.
//
// Error behaviour follows the XHR standard where strophe depends on it: a
// network error or abort ends in readyState 4 with status 0 (strophe counts it
// as a failed request and retries), and a body that is not well-formed XML
// gives a document rooted at <parsererror>, as browsers do (strophe then
// disconnects with 'strophe-parsererror' instead of hanging).
import http from 'node:http';
import https from 'node:https';
import { DOMParser, DOMImplementation } from '@xmldom/xmldom';

const UNSENT = 0;
const OPENED = 1;
const HEADERS_RECEIVED = 2;
const LOADING = 3;
const DONE = 4;

/** The namespace Firefox gives its <parsererror> root; strophe only checks the tag name. */
const PARSE_ERROR_NS = 'http://www.mozilla.org/newlayout/xml/parsererror.xml';

/** Parses `text` as XML: a Document, a <parsererror> Document when malformed, null when empty. */
export function parseXml(text) {
  if (text.trim() === '') return null;
  try {
    return new DOMParser({
      onError: (level, message) => {
        // xmldom reports recoverable problems as 'error'; a browser refuses
        // those documents too, so both count.
        if (level === 'fatalError' || level === 'error') throw new Error(String(message));
      },
    }).parseFromString(text, 'text/xml');
  } catch (e) {
    const doc = new DOMImplementation().createDocument(PARSE_ERROR_NS, 'parsererror', null);
    doc.documentElement.appendChild(doc.createTextNode(e.message));
    return doc;
  }
}

export class XMLHttpRequest {
  static UNSENT = UNSENT;
  static OPENED = OPENED;
  static HEADERS_RECEIVED = HEADERS_RECEIVED;
  static LOADING = LOADING;
  static DONE = DONE;

  /** Keep-alive pool shared by every request, like a browser's per-origin connections. */
  static agents = {
    'http:': new http.Agent({ keepAlive: true }),
    'https:': new https.Agent({ keepAlive: true }),
  };

  readyState = UNSENT;
  status = 0;
  statusText = '';
  responseText = '';
  responseXML = null;
  /** The network error behind status 0, for diagnostics (not in the standard). */
  error = null;
  timeout = 0;
  withCredentials = false;
  onreadystatechange = null;
  onload = null;
  onerror = null;
  onabort = null;
  ontimeout = null;
  onloadend = null;

  #method = 'GET';
  #url = null;
  #headers = {};
  #responseHeaders = {};
  #request = null;
  #timer = null;
  // Bumped by open/abort so callbacks of a superseded request do nothing.
  #generation = 0;

  open(method, url, async = true) {
    if (async === false) throw new Error('xhr shim: synchronous requests are not supported');
    const parsed = new URL(String(url));
    if (parsed.protocol !== 'http:' && parsed.protocol !== 'https:') {
      throw new Error(`xhr shim: unsupported URL scheme ${parsed.protocol}`);
    }
    this.#abortRequest();
    this.#generation += 1;
    this.#method = String(method).toUpperCase();
    this.#url = parsed;
    this.#headers = {};
    this.#resetResponse();
    this.error = null;
    this.#setState(OPENED);
  }

  setRequestHeader(name, value) {
    if (this.readyState !== OPENED || this.#request) throw new Error('xhr shim: setRequestHeader before open() or after send()');
    const key = String(name).toLowerCase();
    this.#headers[key] = key in this.#headers ? `${this.#headers[key]}, ${value}` : String(value);
  }

  overrideMimeType() {
    // Responses are always parsed as XML; BOSH never gets anything else.
  }

  send(body = null) {
    if (this.readyState !== OPENED || this.#request) throw new Error('xhr shim: send() needs open() first');
    const generation = this.#generation;
    const mod = this.#url.protocol === 'https:' ? https : http;
    const payload = body == null || this.#method === 'GET' || this.#method === 'HEAD' ? null : Buffer.from(String(body), 'utf8');
    const headers = { ...this.#headers };
    if (payload) headers['content-length'] = String(payload.length);
    if (payload && !headers['content-type']) headers['content-type'] = 'text/plain;charset=UTF-8';

    const req = mod.request(this.#url, { method: this.#method, headers, agent: XMLHttpRequest.agents[this.#url.protocol] });
    this.#request = req;
    req.on('response', (res) => {
      if (generation !== this.#generation) return res.resume();
      this.status = res.statusCode;
      this.statusText = res.statusMessage ?? '';
      this.#responseHeaders = res.headers;
      this.#setState(HEADERS_RECEIVED);
      const chunks = [];
      res.on('data', (chunk) => {
        chunks.push(chunk);
        if (generation === this.#generation && this.readyState !== LOADING) this.#setState(LOADING);
      });
      res.on('end', () => {
        if (generation !== this.#generation) return;
        this.#clearTimer();
        this.#request = null;
        this.responseText = Buffer.concat(chunks).toString('utf8');
        this.responseXML = parseXml(this.responseText);
        this.#setState(DONE);
        this.#fire('onload');
        this.#fire('onloadend');
      });
      res.on('error', (err) => this.#fail(generation, 'onerror', err));
    });
    req.on('error', (err) => this.#fail(generation, 'onerror', err));
    if (this.timeout > 0) {
      this.#timer = setTimeout(() => this.#fail(generation, 'ontimeout', new Error('timeout')), this.timeout);
    }
    req.end(payload ?? undefined);
  }

  abort() {
    const wasActive = this.#request !== null;
    this.#abortRequest();
    this.#generation += 1;
    if (wasActive) {
      // Standard: an active request ends in DONE with status 0, then UNSENT.
      this.#resetResponse();
      this.#setState(DONE);
      this.#fire('onabort');
      this.#fire('onloadend');
    }
    if (wasActive || this.readyState === DONE) this.readyState = UNSENT;
  }

  getAllResponseHeaders() {
    if (this.readyState < HEADERS_RECEIVED) return '';
    return Object.entries(this.#responseHeaders)
      .map(([k, v]) => `${k}: ${Array.isArray(v) ? v.join(', ') : v}\r\n`)
      .join('');
  }

  getResponseHeader(name) {
    if (this.readyState < HEADERS_RECEIVED) return null;
    const v = this.#responseHeaders[String(name).toLowerCase()];
    if (v === undefined) return null;
    return Array.isArray(v) ? v.join(', ') : v;
  }

  #fail(generation, handler, err) {
    if (generation !== this.#generation) return;
    this.#abortRequest();
    this.#generation += 1;
    this.#resetResponse();
    this.error = err;
    this.#setState(DONE);
    this.#fire(handler);
    this.#fire('onloadend');
  }

  #abortRequest() {
    this.#clearTimer();
    if (this.#request) {
      this.#request.destroy();
      this.#request = null;
    }
  }

  #clearTimer() {
    if (this.#timer) clearTimeout(this.#timer);
    this.#timer = null;
  }

  #resetResponse() {
    this.status = 0;
    this.statusText = '';
    this.responseText = '';
    this.responseXML = null;
    this.#responseHeaders = {};
  }

  #setState(state) {
    this.readyState = state;
    this.#fire('onreadystatechange');
  }

  #fire(handler) {
    const fn = this[handler];
    if (typeof fn === 'function') fn.call(this, { type: handler.slice(2), target: this });
  }
}

/** Makes the shim the global XMLHttpRequest (strophe looks it up there). */
export function installXMLHttpRequest() {
  globalThis.XMLHttpRequest = XMLHttpRequest;
}
