/* The alert page's evidence graph, drawn with Cytoscape.js (webapp/static/vendor/cytoscape).
 *
 * Reads the evidence subgraph (node-link JSON, as the alert keeps it) from
 * <script type="application/json" id="alert-evidence"> and the translated labels from
 * id="graph-labels"; draws it in #alert-graph, nodes styled by kind, edges labelled with
 * what they record, the amount and the time; a click on a node or an edge lists its
 * attributes in #graph-panel. Text goes into the page with textContent only.
 *
 * When drawn, #alert-graph gets data-ready="true" and data-nodes / data-edges (the
 * counts), and window.cardtraceGraph is the Cytoscape instance (for the browser tests).
 */
(function () {
  'use strict';

  // Colour and shape per kind of node; the legend's swatches in alerts.css match.
  var KIND_STYLES = {
    party: ['#1f5fbf', 'round-rectangle'],
    merchant: ['#1f5fbf', 'round-rectangle'],
    buyer: ['#e8833a', 'ellipse'],
    instrument: ['#b42318', 'diamond'],
    payment_ref: ['#b42318', 'diamond'],
    card: ['#b42318', 'diamond'],
    device: ['#6941c6', 'hexagon'],
    ip: ['#0e9384', 'triangle'],
    code: ['#667085', 'rectangle'],
    batch: ['#98a2b3', 'barrel'],
    product: ['#98a2b3', 'barrel']
  };
  var FALLBACK_STYLE = ['#475467', 'ellipse'];

  function readJson(id) {
    var element = document.getElementById(id);
    if (!element) { return null; }
    try { return JSON.parse(element.textContent); } catch (e) { return null; }
  }

  var lang = document.documentElement.lang || 'en';
  var numbers = new Intl.NumberFormat(lang, { maximumFractionDigits: 2 });
  var dates = new Intl.DateTimeFormat(lang, { dateStyle: 'medium', timeStyle: 'short' });

  function formatTime(text) {
    if (typeof text !== 'string') { return String(text); }
    // The ledger writes microseconds; Date reads milliseconds.
    var moment = new Date(text.replace(/(\.\d{3})\d+/, '$1'));
    return isNaN(moment.getTime()) ? text : dates.format(moment);
  }

  function formatValue(name, value) {
    if (value === null || value === undefined) { return ''; }
    if ((name === 'time' || name === 'at') && typeof value === 'string') { return formatTime(value); }
    if (name === 'amount' && typeof value === 'number') { return numbers.format(value); }
    if (typeof value === 'object') { return JSON.stringify(value); }
    return String(value);
  }

  function shortName(node) {
    var name = node.name !== undefined ? String(node.name) : String(node.id);
    var colon = name.indexOf(':');
    if (node.name === undefined && colon >= 0) { name = name.slice(colon + 1); }
    return name.length > 14 ? name.slice(0, 12) + '…' : name;
  }

  function edgeLabel(edge, labels) {
    var parts = [labels.edges[edge.kind] || edge.kind || ''];
    if (typeof edge.amount === 'number') { parts.push(numbers.format(edge.amount)); }
    if (edge.time || edge.at) { parts.push(formatTime(edge.time || edge.at)); }
    return parts.filter(Boolean).join('\n');
  }

  function elementsOf(evidence, labels, subject) {
    var elements = [];
    var known = {};
    (evidence.nodes || []).forEach(function (node) {
      var kind = node.kind || '';
      known[node.id] = true;
      elements.push({
        group: 'nodes',
        data: {
          id: String(node.id),
          kind: kind,
          label: shortName(node),
          attributes: node,
          color: (KIND_STYLES[kind] || FALLBACK_STYLE)[0],
          shape: (KIND_STYLES[kind] || FALLBACK_STYLE)[1]
        },
        classes: String(node.id) === subject ? 'subject' : ''
      });
    });
    (evidence.edges || evidence.links || []).forEach(function (edge, index) {
      [edge.source, edge.target].forEach(function (end) {
        if (!known[end]) {
          known[end] = true;
          elements.push({
            group: 'nodes',
            data: { id: String(end), kind: '', label: shortName({ id: end }), attributes: { id: end },
                    color: FALLBACK_STYLE[0], shape: FALLBACK_STYLE[1] }
          });
        }
      });
      elements.push({
        group: 'edges',
        data: {
          id: 'edge-' + index,
          source: String(edge.source),
          target: String(edge.target),
          label: edgeLabel(edge, labels),
          attributes: edge
        }
      });
    });
    return elements;
  }

  function showAttributes(title, attributes, labels) {
    var heading = document.getElementById('graph-panel-title');
    var list = document.getElementById('graph-panel-attributes');
    if (!heading || !list) { return; }
    heading.textContent = title;
    while (list.firstChild) { list.removeChild(list.firstChild); }
    Object.keys(attributes).forEach(function (name) {
      if (name === 'key' || name === 'source' || name === 'target') { return; }
      var term = document.createElement('dt');
      term.textContent = labels.attributes[name] || name;
      var value = document.createElement('dd');
      var shown = attributes[name];
      if (name === 'kind') { shown = labels.kinds[shown] || labels.edges[shown] || shown; }
      value.textContent = formatValue(name, shown);
      list.appendChild(term);
      list.appendChild(value);
    });
  }

  function draw() {
    var container = document.getElementById('alert-graph');
    var evidence = readJson('alert-evidence');
    var labels = readJson('graph-labels') || { kinds: {}, edges: {}, attributes: {} };
    if (!container || !evidence || typeof window.cytoscape !== 'function') { return; }
    var subject = container.getAttribute('data-subject') || '';
    var elements = elementsOf(evidence, labels, subject);
    var cy = window.cytoscape({
      container: container,
      elements: elements,
      style: [
        {
          selector: 'node',
          style: {
            'background-color': 'data(color)',
            'shape': 'data(shape)',
            'label': 'data(label)',
            'font-size': 10,
            'color': '#1c2330',
            'text-valign': 'bottom',
            'text-margin-y': 3,
            'width': 22,
            'height': 22,
            'border-width': 1,
            'border-color': '#ffffff'
          }
        },
        { selector: 'node.subject', style: { 'border-width': 4, 'border-color': '#f5c16c', 'width': 30, 'height': 30 } },
        { selector: 'node:selected', style: { 'border-width': 4, 'border-color': '#1c2330' } },
        {
          selector: 'edge',
          style: {
            'width': 1.5,
            'line-color': '#98a2b3',
            'target-arrow-color': '#98a2b3',
            'target-arrow-shape': 'triangle',
            'curve-style': 'bezier',
            'label': 'data(label)',
            'font-size': 8,
            'color': '#475467',
            'text-wrap': 'wrap',
            'text-background-color': '#fbfcfe',
            'text-background-opacity': 1,
            'text-background-padding': 1
          }
        },
        { selector: 'edge:selected', style: { 'line-color': '#1f5fbf', 'target-arrow-color': '#1f5fbf', 'width': 3 } }
      ],
      // Evidence is a flow (merchant, code, buyer, what paid, what was used): drawn top-down
      // from where it starts; a very large subgraph as a grid, which stays fast.
      layout: elements.length > 600
        ? { name: 'grid', padding: 20 }
        : { name: 'breadthfirst', directed: true, padding: 30, spacingFactor: 1.3, animate: false }
    });
    cy.on('tap', 'node', function (event) {
      var node = event.target;
      var kind = labels.kinds[node.data('kind')] || node.data('kind');
      showAttributes((kind ? kind + ': ' : '') + node.data('label'), node.data('attributes'), labels);
    });
    cy.on('tap', 'edge', function (event) {
      var edge = event.target;
      showAttributes(edge.data('label'), edge.data('attributes'), labels);
    });
    container.setAttribute('data-nodes', String(cy.nodes().length));
    container.setAttribute('data-edges', String(cy.edges().length));
    container.setAttribute('data-ready', 'true');
    window.cardtraceGraph = cy;
  }

  if (document.readyState === 'loading') {
    document.addEventListener('DOMContentLoaded', draw);
  } else {
    draw();
  }
}());
