/* The coupon form shows only the value fields of the chosen type (coupons.admin,
   CouponAdmin.Media). The server stores the other types' values empty whatever is typed
   (CouponAdminForm._converted), so hidden inputs keep their text: switching back shows it
   again. A row with an error is never hidden. Without JavaScript every row shows. */
"use strict";
(function () {
    const FIELDS = {
        percentage: ["percent", "cap"],
        fixed: ["amount"],
        bogo: ["bogo_buy", "bogo_get", "bogo_percent_off"],
        tiered: ["tiers_text"],
        free_shipping: [],
    };
    const ALL = Object.values(FIELDS).flat();
    const NOTES = {
        "": "Choose a type above to see its value fields.",
        free_shipping: "Free shipping has no value fields.",
    };

    function setUp() {
        const select = document.getElementById("id_type");
        if (!select) {
            return;  // the list page, or a read-only form
        }
        const rows = ALL.map(name => [name, document.querySelector(".form-row.field-" + name)])
            .filter(([, row]) => row);
        if (!rows.length) {
            return;
        }
        const fieldset = rows[0][1].closest("fieldset");
        const note = document.createElement("p");
        note.className = "help coupon-type-note";
        note.id = "coupon-type-note";
        rows[0][1].before(note);

        function update() {
            const shown = FIELDS[select.value] || (select.value ? ALL : []);
            for (const [name, row] of rows) {
                const keep = shown.includes(name) || row.classList.contains("errors");
                row.hidden = !keep;
            }
            const text = NOTES[select.value] || "";
            note.textContent = text;
            note.hidden = !text || rows.some(([, row]) => !row.hidden);
            if (fieldset) {
                fieldset.dataset.couponType = select.value;
            }
        }

        select.addEventListener("change", update);
        update();
    }

    if (document.readyState === "loading") {
        document.addEventListener("DOMContentLoaded", setUp);
    } else {
        setUp();
    }
})();
