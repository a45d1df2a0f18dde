/**
 * Test-only page that mounts the firmware update panel against an in-page
 * virtual device (built and served by ./serve.ts, never part of the app
 * build). `window.__update` lets a test start the device with the key it
 * signs images with, and unplug / plug it back.
 */
import { mount } from 'svelte';
import '../../../src/ui/app.css';
import UpdateHarnessView from './UpdateHarness.svelte';
import { UpdateHarness } from './harness.svelte.ts';

const h = new UpdateHarness();
(globalThis as { __update?: unknown }).__update = h;
mount(UpdateHarnessView, { target: document.getElementById('app')!, props: { h } });
document.body.dataset.ready = '1';
