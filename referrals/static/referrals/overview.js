/* Draws the referrals overview's charts with Chart.js 2.9 (served by django-chartjs as
 * static/js/Chart.min.js, as on the billing and coupon analytics pages). The data comes
 * from the page's json_script block "referrals-series": {labels, funnel: {labels, data},
 * referred, organic, referrers: {labels, rewarded, converted},
 * rewards: [{currency, given, clawed_back}]} (amounts in major units; the page's text is
 * formatted on the server). After drawing, each canvas carries data-rendered="true". */
(function () {
  "use strict";

  var COLORS = {main: "#417690", light: "#79aec8", accent: "#e07b39", good: "#5b9c5b"};

  function counts(stacked) {
    return {stacked: !!stacked, ticks: {beginAtZero: true, precision: 0}};
  }

  function bars(labels, datasets, options) {
    return {type: "bar", data: {labels: labels, datasets: datasets}, options: options};
  }

  function configs(s) {
    var shades = [COLORS.good, COLORS.accent, COLORS.main, COLORS.light];
    return {
      funnel: {type: "horizontalBar",
               data: {labels: s.funnel.labels, datasets: [{label: "Referrals", data: s.funnel.data,
                      backgroundColor: [COLORS.light, COLORS.main, COLORS.good]}]},
               options: {legend: {display: false}, scales: {xAxes: [counts(false)]}}},
      signups: bars(s.labels, [
        {label: "Referred", data: s.referred, backgroundColor: COLORS.main},
        {label: "Organic", data: s.organic, backgroundColor: COLORS.light}
      ], {scales: {xAxes: [{stacked: true}], yAxes: [counts(true)]}}),
      referrers: bars(s.referrers.labels, [
        {label: "Rewarded", data: s.referrers.rewarded, backgroundColor: COLORS.good},
        {label: "Converted", data: s.referrers.converted, backgroundColor: COLORS.main}
      ], {scales: {yAxes: [counts(false)]}}),
      rewards: bars(s.labels, s.rewards.reduce(function (all, r, i) {
        return all.concat([
          {label: "Given " + r.currency, data: r.given, backgroundColor: shades[(2 * i) % 4]},
          {label: "Clawed back " + r.currency, data: r.clawed_back,
           backgroundColor: shades[(2 * i + 1) % 4]}
        ]);
      }, []), {scales: {yAxes: [{ticks: {beginAtZero: true}}]}})
    };
  }

  function draw() {
    var source = document.getElementById("referrals-series");
    var canvases = document.querySelectorAll("canvas[data-chart]");
    if (!source || !canvases.length) {
      return;
    }
    if (typeof window.Chart === "undefined") {
      canvases.forEach(function (c) { c.setAttribute("data-rendered", "false"); });
      return;
    }
    var quiet = window.getComputedStyle(document.documentElement)
      .getPropertyValue("--body-quiet-color");
    window.Chart.defaults.global.defaultFontColor = (quiet && quiet.trim()) || "#666";
    window.Chart.defaults.global.animation.duration = 0;
    var all = configs(JSON.parse(source.textContent));
    canvases.forEach(function (canvas) {
      var config = all[canvas.getAttribute("data-chart")];
      if (!config) {
        return;
      }
      config.options.responsive = true;
      config.options.maintainAspectRatio = false;
      config.options.tooltips = {mode: "index", intersect: false};
      new window.Chart(canvas.getContext("2d"), config);
      canvas.setAttribute("data-rendered", "true");
    });
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", draw);
  } else {
    draw();
  }
}());
