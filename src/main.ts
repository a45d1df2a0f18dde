import { mount } from 'svelte';
import App from './ui/App.svelte';
import UpdatePrompt from './ui/pwa/UpdatePrompt.svelte';
import './ui/app.css';

const target = document.getElementById('app');
if (!target) throw new Error('index.html lacks #app');
mount(App, { target });
// Service worker (offline use) and the "new version ready" prompt, outside the app's layout.
mount(UpdatePrompt, { target: document.body });
