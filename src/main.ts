import { mount } from 'svelte';
import App from './ui/App.svelte';
import './ui/app.css';

const target = document.getElementById('app');
if (!target) throw new Error('index.html lacks #app');
mount(App, { target });
// Service worker (offline use) and the "new version ready" prompt, outside the app's layout: registered
// once the page has loaded, so its precaching does not compete with the first screen (issue 14).
const prompt = () => void import('./ui/pwa/UpdatePrompt.svelte').then(({ default: UpdatePrompt }) => mount(UpdatePrompt, { target: document.body }));
if (document.readyState === 'complete') prompt();
else addEventListener('load', prompt, { once: true });
