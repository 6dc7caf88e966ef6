document.getElementById("out").textContent = "version 1";
