/* The widget pages of the book, offline and without console errors.
 *
 * Loaded on every page that embeds widget state, after RequireJS and before the vendored
 * @jupyter-widgets/html-manager 1.0.x (embed-amd.js); see nb_ipywidgets_js in _config.yml.
 * It mends two things the manager gets wrong on a static page that loads MathJax 3:
 *
 * 1. Font files. The manager's bundled stylesheet (Font Awesome) names its fonts relative to
 *    the URL RequireJS gives the module "@jupyter-widgets/html-manager/dist/libembed-amd",
 *    which by default is relative to the page (notebooks/@jupyter-widgets/html-manager/dist/
 *    *.woff2), where nothing is. RequireJS is told that this module path is the vendored
 *    folder beside this script in _static/, where the fonts are. (The manager's own setting,
 *    window.__jupyter_widgets_assets_path__, is read only after the stylesheet is added.)
 * 2. MathJax. The manager typesets every control's label with MathJax.Hub.Queue, the
 *    MathJax 2 interface, whenever window.MathJax exists; MathJax 3 has no Hub, so each label
 *    threw "Cannot read properties of undefined (reading 'Queue')". MathJax 3 gets a Hub
 *    whose Queue typesets the element with MathJax 3's typesetPromise.
 */
(function () {
  "use strict";
  var script = document.currentScript;
  if (script && script.src && window.requirejs) {
    window.requirejs.config({
      paths: {"@jupyter-widgets/html-manager/dist": new URL("jupyter-widgets/html-manager", script.src).href}
    });
  }

  function typeset(element) {
    var mathjax = window.MathJax;
    if (!element || typeof mathjax.typesetPromise !== "function") {
      return;
    }
    // after MathJax's own first pass, as MathJax 3 asks of later typesetting
    mathjax.startup.promise = mathjax.startup.promise
      .then(function () { return mathjax.typesetPromise([element]); })
      .catch(function (err) { console.warn("MathJax could not typeset a widget label:", err); });
  }

  function addHub() {
    var mathjax = window.MathJax;
    // MathJax 3 replaces the configuration object window.MathJax by itself when it runs
    // (a deferred script: before DOMContentLoaded), and only then has a version.
    if (mathjax && mathjax.version && !mathjax.Hub) {
      mathjax.Hub = {
        // the manager queues ["Typeset", MathJax.Hub, element]
        Queue: function (job) { typeset(job && job[2]); }
      };
    }
  }

  addHub();
  document.addEventListener("DOMContentLoaded", addHub);
  window.addEventListener("load", addHub); // the manager renders the widgets on load, after this
})();
